/*
 * cg_err.h - the one error space of cmpgate.
 *
 * DESIGN: every function returns int, 0 is success and a negative CG_E* is a failure
 * (LMDB style). CMP rejections are results, not errors: core maps the CG_ECMP_* codes
 * to PKIFailureInfo bits in one table at its single exit. Leaf header: libc only.
 */
#ifndef CG_CORE_CG_ERR_H
#define CG_CORE_CG_ERR_H

enum cg_err {
    CG_OK = 0,
    CG_EINTERNAL = -1,    /* invariant broken or unexpected library failure */
    CG_ENOMEM = -2,       /* allocation failed */
    CG_EINVAL = -3,       /* bad argument or input */
    CG_ENOTFOUND = -4,    /* no such record */
    CG_EEXIST = -5,       /* record exists where it must not */
    CG_ECONFLICT = -6,    /* record version changed under us */
    CG_EIO = -7,          /* file or socket I/O failed */
    CG_EFULL = -8,        /* queue or map full */
    CG_ETOOBIG = -9,      /* over a configured limit */
    CG_EPARSE = -10,      /* malformed input (JSON, DER, frame) */
    CG_ESTORE = -11,      /* LMDB failure */
    CG_ECRYPTO = -12,     /* libcrypto failure */
    CG_ECLOSED = -13,     /* object shut down */
    CG_EALREADY = -14,    /* state change already done (e.g. revoked twice) */
    CG_ECONFIG = -15,     /* configuration invalid */
    CG_EINCOMPLETE = -16, /* need more bytes */
    CG_EBUSY = -17,       /* held by someone else: try again when it is released */
    /* CMP outcomes, mapped to PKIFailureInfo in core */
    CG_ECMP_BADREQUEST = -100,
    CG_ECMP_BADMSGCHECK = -101,
    CG_ECMP_BADPOP = -102,
    CG_ECMP_WRONGAUTHORITY = -103,
    CG_ECMP_NOTAUTHORIZED = -104,
    CG_ECMP_BADCERTID = -105,
    CG_ECMP_CERTREVOKED = -106,
    CG_ECMP_INCORRECTDATA = -107,
    CG_ECMP_TXIDINUSE = -108,
    CG_ECMP_BADRECIPNONCE = -109,
    CG_ECMP_BADSENDERNONCE = -110,
    CG_ECMP_UNSUPPORTEDVERSION = -111,
    CG_ECMP_BADCERTTEMPLATE = -112,
    CG_ECMP_BADALG = -113,
    CG_ECMP_BADDATAFORMAT = -114,
    CG_ECMP_SYSTEMUNAVAIL = -115,
    CG_ECMP_BADTIME = -116,
    CG_ECMP_SIGNERNOTTRUSTED = -117,
    CG_ECMP_CERTCONFIRMED = -118,
    CG_ECMP_WRONGINTEGRITY = -119,
};

/** @brief Static text for any cg_err code (never NULL). Thread-safe. */
const char *cg_strerror(int err);

#endif
