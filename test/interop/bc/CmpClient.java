// test/interop/bc/CmpClient.java - a CMP client built on Bouncy Castle's org.bouncycastle.cert.cmp
// and org.bouncycastle.cert.crmf classes, used by test/integration/cases/bc_interop.sh to check
// that cmpgate interoperates with a second, independent CMP implementation (the first being
// `openssl cmp`). Every mode prints one "OK MODE: ..." line on success, or "FAIL MODE: ..." and
// exits 1 on the first deviation (HTTP, structure, protection, nonces, status, certificate).
//
//   ir-pbm  URL SECRET REF SUBJECT CAFILE OUTCERT [OUTKEY]   (OUTKEY defaults to OUTCERT.key)
//   cr-sig  URL CERT KEY SUBJECT CAFILE OUTCERT [OUTKEY]
//   kur-sig URL CERT KEY CAFILE OUTCERT [OUTKEY]
//   rr-pbm  URL SECRET REF CERTFILE CAFILE
//   rr-pbm-expect-revoked URL SECRET REF CERTFILE CAFILE     (rejection, failInfo certRevoked)
//   ir-pbm-expect-error URL SECRET REF SUBJECT CAFILE FAILINFO (an error message with FAILINFO)
//
// Environment: BC_DUMP=DIR writes every request/response DER there (MODE-N-req.der / -rsp.der).
// Response protection is verified according to its protectionAlg: PBM with SECRET, signatures
// with the CA certificate (CAFILE).
import java.io.ByteArrayOutputStream;
import java.io.FileOutputStream;
import java.io.FileReader;
import java.io.FileWriter;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigInteger;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import java.util.Date;

import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1OctetString;
import org.bouncycastle.asn1.ASN1BitString;
import org.bouncycastle.asn1.cmp.CMPCertificate;
import org.bouncycastle.asn1.cmp.CertRepMessage;
import org.bouncycastle.asn1.cmp.CertResponse;
import org.bouncycastle.asn1.cmp.ErrorMsgContent;
import org.bouncycastle.asn1.cmp.PKIBody;
import org.bouncycastle.asn1.cmp.PKIFailureInfo;
import org.bouncycastle.asn1.cmp.PKIFreeText;
import org.bouncycastle.asn1.cmp.PKIHeader;
import org.bouncycastle.asn1.cmp.PKIMessage;
import org.bouncycastle.asn1.cmp.PKIStatus;
import org.bouncycastle.asn1.cmp.PKIStatusInfo;
import org.bouncycastle.asn1.cmp.RevRepContent;
import org.bouncycastle.asn1.cmp.RevReqContent;
import org.bouncycastle.asn1.crmf.CertId;
import org.bouncycastle.asn1.crmf.CertReqMessages;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.SubjectKeyIdentifier;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.cmp.CertificateConfirmationContent;
import org.bouncycastle.cert.cmp.CertificateConfirmationContentBuilder;
import org.bouncycastle.cert.cmp.GeneralPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessageBuilder;
import org.bouncycastle.cert.cmp.RevocationDetails;
import org.bouncycastle.cert.cmp.RevocationDetailsBuilder;
import org.bouncycastle.cert.crmf.CertificateRequestMessage;
import org.bouncycastle.cert.crmf.CertificateRequestMessageBuilder;
import org.bouncycastle.cert.crmf.Control;
import org.bouncycastle.cert.crmf.PKMACBuilder;
import org.bouncycastle.cert.crmf.jcajce.JcePKMACValuesCalculator;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.MacCalculator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

public class CmpClient {
    static final BigInteger CERT_REQ_ID = BigInteger.ZERO;
    /** id-regCtrl-oldCertID (RFC 4211 6.5) */
    static final ASN1ObjectIdentifier OLD_CERT_ID = new ASN1ObjectIdentifier("1.3.6.1.5.5.7.5.1.5");
    static final SecureRandom RNG = new SecureRandom();
    static String mode = "?";
    static int msgNo = 0;

    static class Fail extends Exception {
        Fail(String m) { super(m); }
    }

    static void fail(String m) throws Fail { throw new Fail(m); }

    public static void main(String[] a) {
        Security.addProvider(new BouncyCastleProvider());
        if (a.length < 1) usage();
        mode = a[0];
        try {
            switch (mode) {
            case "ir-pbm":
                need(a, 7, 8);
                enrollPbm(a[1], a[2], a[3], a[4], a[5], a[6], a.length > 7 ? a[7] : a[6] + ".key");
                break;
            case "ir-pbm-expect-error":
                need(a, 7, 7);
                irExpectError(a[1], a[2], a[3], a[4], a[5], a[6]);
                break;
            case "cr-sig":
                need(a, 7, 8);
                enrollSig(PKIBody.TYPE_CERT_REQ, a[1], a[2], a[3], a[4], a[5], a[6], a.length > 7 ? a[7] : a[6] + ".key");
                break;
            case "kur-sig":
                need(a, 6, 7);
                enrollSig(PKIBody.TYPE_KEY_UPDATE_REQ, a[1], a[2], a[3], null, a[4], a[5], a.length > 6 ? a[6] : a[5] + ".key");
                break;
            case "rr-pbm":
            case "rr-pbm-expect-revoked":
                need(a, 6, 6);
                revokePbm(a[1], a[2], a[3], a[4], a[5], mode.endsWith("expect-revoked"));
                break;
            default:
                usage();
            }
        } catch (Fail f) {
            System.out.println("FAIL " + mode + ": " + f.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.out.println("FAIL " + mode + ": exception " + e);
            e.printStackTrace(System.out);
            System.exit(1);
        }
    }

    static void usage() {
        System.err.println("usage: CmpClient ir-pbm|ir-pbm-expect-error|cr-sig|kur-sig|rr-pbm|rr-pbm-expect-revoked ARGS (see the source)");
        System.exit(2);
    }

    static void need(String[] a, int min, int max) {
        if (a.length < min || a.length > max) usage();
    }

    // ---- keys, certificates, PEM ---------------------------------------------------------

    static KeyPair newKey(String alg) throws Exception {
        KeyPairGenerator g;
        if (alg.equals("RSA")) {
            g = KeyPairGenerator.getInstance("RSA", "BC");
            g.initialize(2048, RNG);
        } else {
            g = KeyPairGenerator.getInstance("EC", "BC");
            g.initialize(new ECGenParameterSpec("P-256"), RNG);
        }
        return g.generateKeyPair();
    }

    static String sigAlg(PrivateKey k) {
        return k.getAlgorithm().startsWith("EC") ? "SHA256withECDSA" : "SHA256withRSA";
    }

    static ContentSigner signer(PrivateKey k) throws Exception {
        return new JcaContentSignerBuilder(sigAlg(k)).setProvider("BC").build(k);
    }

    static X509CertificateHolder readCert(String file) throws Exception {
        try (PEMParser p = new PEMParser(new FileReader(file))) {
            Object o = p.readObject();
            if (!(o instanceof X509CertificateHolder)) fail("no PEM certificate in " + file);
            return (X509CertificateHolder) o;
        }
    }

    static PrivateKey readKey(String file) throws Exception {
        try (PEMParser p = new PEMParser(new FileReader(file))) {
            Object o = p.readObject();
            JcaPEMKeyConverter c = new JcaPEMKeyConverter().setProvider("BC");
            if (o instanceof PEMKeyPair) return c.getKeyPair((PEMKeyPair) o).getPrivate();
            if (o instanceof org.bouncycastle.asn1.pkcs.PrivateKeyInfo)
                return c.getPrivateKey((org.bouncycastle.asn1.pkcs.PrivateKeyInfo) o);
            fail("no PEM private key in " + file + " (" + o + ")");
            return null;
        }
    }

    static void writePem(String file, Object o) throws Exception {
        try (JcaPEMWriter w = new JcaPEMWriter(new FileWriter(file))) {
            w.writeObject(o);
        }
    }

    // ---- transport -----------------------------------------------------------------------

    static byte[] post(String url, PKIMessage msg) throws Exception {
        byte[] req = msg.getEncoded();
        msgNo++;
        dump("req", req);
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setRequestMethod("POST");
        c.setDoOutput(true);
        c.setConnectTimeout(10000);
        c.setReadTimeout(20000);
        c.setRequestProperty("Content-Type", "application/pkixcmp");
        try (OutputStream o = c.getOutputStream()) {
            o.write(req);
        }
        int code = c.getResponseCode();
        InputStream in = code >= 400 ? c.getErrorStream() : c.getInputStream();
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        if (in != null) {
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0;) b.write(buf, 0, n);
            in.close();
        }
        byte[] rsp = b.toByteArray();
        dump("rsp", rsp);
        if (code != 200) fail("HTTP " + code + " from " + url + " (" + rsp.length + " bytes)");
        String ct = c.getContentType();
        if (ct == null || !ct.toLowerCase().startsWith("application/pkixcmp"))
            fail("response Content-Type is " + ct + ", not application/pkixcmp");
        return rsp;
    }

    static void dump(String kind, byte[] der) {
        String dir = System.getenv("BC_DUMP");
        if (dir == null || dir.isEmpty()) return;
        try (FileOutputStream f = new FileOutputStream(dir + "/" + mode + "-" + msgNo + "-" + kind + ".der")) {
            f.write(der);
        } catch (Exception e) {
            System.err.println("BC_DUMP: " + e);
        }
    }

    // ---- message construction -----------------------------------------------------------

    /** A request header: fresh 16-byte transactionID (or the given one) and senderNonce. */
    static class Exchange {
        byte[] txid = rand(16);
        byte[] nonce;
        byte[] recipNonce; // the server's senderNonce, echoed in the next request
    }

    static byte[] rand(int n) {
        byte[] b = new byte[n];
        RNG.nextBytes(b);
        return b;
    }

    static ProtectedPKIMessageBuilder builder(Exchange x, GeneralName sender, X500Name recipient, PKIBody body) {
        x.nonce = rand(16);
        ProtectedPKIMessageBuilder b = new ProtectedPKIMessageBuilder(sender, new GeneralName(recipient));
        b.setTransactionID(x.txid).setSenderNonce(x.nonce).setMessageTime(new Date()).setBody(body);
        if (x.recipNonce != null) b.setRecipNonce(x.recipNonce);
        return b;
    }

    static MacCalculator pbm(String secret) throws Exception {
        return new PKMACBuilder(new JcePKMACValuesCalculator().setProvider("BC")).build(secret.toCharArray());
    }

    static PKIBody certReqBody(int type, SubjectPublicKeyInfo spki, X500Name subject, PrivateKey popoKey,
                               X509CertificateHolder oldCert) throws Exception {
        CertificateRequestMessageBuilder rb = new CertificateRequestMessageBuilder(CERT_REQ_ID);
        rb.setPublicKey(spki);
        if (subject != null) rb.setSubject(subject);
        if (oldCert != null) {
            final CertId id = new CertId(new GeneralName(oldCert.getIssuer()), oldCert.getSerialNumber());
            rb.addControl(new Control() {
                public ASN1ObjectIdentifier getType() { return OLD_CERT_ID; }
                public ASN1Encodable getValue() { return id; }
            });
        }
        rb.setProofOfPossessionSigningKeySigner(signer(popoKey));
        CertificateRequestMessage m = rb.build();
        return new PKIBody(type, new CertReqMessages(m.toASN1Structure()));
    }

    // ---- response checks ----------------------------------------------------------------

    static String bodyName(int t) {
        switch (t) {
        case PKIBody.TYPE_INIT_REP: return "ip";
        case PKIBody.TYPE_CERT_REP: return "cp";
        case PKIBody.TYPE_KEY_UPDATE_REP: return "kup";
        case PKIBody.TYPE_REVOCATION_REP: return "rp";
        case PKIBody.TYPE_CONFIRM: return "pkiconf";
        case PKIBody.TYPE_ERROR: return "error";
        default: return "body" + t;
        }
    }

    static final String[] FAIL_NAMES = {"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId",
        "badDataFormat", "wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
        "certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable", "unacceptedPolicy",
        "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce", "badCertTemplate", "signerNotTrusted",
        "transactionIdInUse", "unsupportedVersion", "notAuthorized", "systemUnavail", "systemFailure",
        "duplicateCertReq"};

    static String failInfoNames(ASN1BitString fi) {
        if (fi == null) return "none";
        StringBuilder s = new StringBuilder();
        byte[] b = fi.getBytes();
        for (int i = 0; i < b.length * 8 - fi.getPadBits(); i++)
            if ((b[i / 8] & (0x80 >> (i % 8))) != 0)
                s.append(s.length() > 0 ? "," : "").append(i < FAIL_NAMES.length ? FAIL_NAMES[i] : "bit" + i);
        return s.length() > 0 ? s.toString() : "none";
    }

    static String statusName(PKIStatusInfo si) {
        String[] n = {"accepted", "grantedWithMods", "rejection", "waiting", "revocationWarning",
                      "revocationNotification", "keyUpdateWarning"};
        int v = si.getStatus().intValue();
        return v >= 0 && v < n.length ? n[v] : "status" + v;
    }

    static String text(PKIFreeText t) {
        if (t == null) return "";
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < t.size(); i++) s.append(i > 0 ? "; " : "").append(t.getStringAtUTF8(i).getString());
        return s.toString();
    }

    static String describe(PKIStatusInfo si) {
        return "status=" + statusName(si) + " failInfo=" + failInfoNames(si.getFailInfo())
            + (si.getStatusString() != null ? " text=\"" + text(si.getStatusString()) + "\"" : "");
    }

    /**
     * Parse a response, check transactionID and recipNonce, verify its protection ("pbm",
     * "sig" or "any"; "none-ok" accepts an unprotected message). Returns the parsed message.
     */
    static GeneralPKIMessage check(byte[] der, Exchange x, String expectProt, String secret,
                                   X509CertificateHolder ca) throws Exception {
        GeneralPKIMessage g;
        try {
            g = new GeneralPKIMessage(der);
        } catch (Exception e) {
            fail("response is not a PKIMessage: " + e.getMessage());
            return null;
        }
        PKIHeader h = g.getHeader();
        int t = g.getBody().getType();
        String where = bodyName(t);
        if (t == PKIBody.TYPE_ERROR && !expectProt.equals("none-ok")) {
            ErrorMsgContent e = ErrorMsgContent.getInstance(g.getBody().getContent());
            fail("server answered error " + describe(e.getPKIStatusInfo()) + " protection="
                 + (g.hasProtection() ? "yes" : "none"));
        }
        if (h.getPvno().intValueExact() != PKIHeader.CMP_2000 && h.getPvno().intValueExact() != 3)
            fail(where + ": pvno " + h.getPvno());
        if (h.getTransactionID() == null || !Arrays.equals(h.getTransactionID().getOctets(), x.txid))
            fail(where + ": transactionID does not match the request's");
        if (h.getRecipNonce() == null || !Arrays.equals(h.getRecipNonce().getOctets(), x.nonce))
            fail(where + ": recipNonce does not echo the request's senderNonce");
        if (h.getSenderNonce() == null || h.getSenderNonce().getOctets().length < 16)
            fail(where + ": senderNonce missing or shorter than 16 bytes");
        x.recipNonce = h.getSenderNonce().getOctets();
        if (!g.hasProtection()) {
            if (expectProt.equals("none-ok")) return g;
            fail(where + ": response is not protected");
        }
        ProtectedPKIMessage p = new ProtectedPKIMessage(g);
        if (p.hasPasswordBasedMacProtection()) {
            if (expectProt.equals("sig")) fail(where + ": PBM-protected, a signature was expected");
            if (secret == null) fail(where + ": PBM-protected but no secret is known");
            if (!p.verify(new PKMACBuilder(new JcePKMACValuesCalculator().setProvider("BC")), secret.toCharArray()))
                fail(where + ": PBM protection does not verify with the shared secret");
        } else {
            if (expectProt.equals("pbm")) fail(where + ": signature-protected, PBM was expected");
            ContentVerifierProvider v = new JcaContentVerifierProviderBuilder().setProvider("BC").build(ca);
            if (!p.verify(v)) fail(where + ": signature protection does not verify with the CA certificate");
            if (h.getSender().getTagNo() != GeneralName.directoryName
                || !X500Name.getInstance(h.getSender().getName()).equals(ca.getSubject()))
                fail(where + ": sender " + h.getSender() + " is not the CA " + ca.getSubject());
        }
        return g;
    }

    static String protName(GeneralPKIMessage g) {
        if (!g.hasProtection()) return "none";
        return new ProtectedPKIMessage(g).hasPasswordBasedMacProtection() ? "pbm" : "signature";
    }

    /** The issued certificate of an ip/cp/kup; checks status, certReqId, signature, subject, key. */
    static X509CertificateHolder issued(GeneralPKIMessage g, int wantType, X500Name subject,
                                        SubjectPublicKeyInfo spki, X509CertificateHolder ca) throws Exception {
        int t = g.getBody().getType();
        if (t != wantType) fail("expected " + bodyName(wantType) + ", got " + bodyName(t));
        CertRepMessage rep = CertRepMessage.getInstance(g.getBody().getContent());
        CertResponse[] rs = rep.getResponse();
        if (rs.length != 1) fail(bodyName(t) + " has " + rs.length + " CertResponses");
        CertResponse r = rs[0];
        PKIStatusInfo si = r.getStatus();
        if (si.getStatus().intValue() != PKIStatus.GRANTED && si.getStatus().intValue() != PKIStatus.GRANTED_WITH_MODS)
            fail(bodyName(t) + " " + describe(si));
        if (!r.getCertReqId().getValue().equals(CERT_REQ_ID)) fail(bodyName(t) + ": certReqId " + r.getCertReqId());
        if (r.getCertifiedKeyPair() == null || r.getCertifiedKeyPair().getCertOrEncCert().getCertificate() == null)
            fail(bodyName(t) + ": no certificate in the CertifiedKeyPair");
        CMPCertificate cc = r.getCertifiedKeyPair().getCertOrEncCert().getCertificate();
        if (!cc.isX509v3PKCert()) fail(bodyName(t) + ": certificate is not an X.509 certificate");
        X509CertificateHolder cert = new X509CertificateHolder(cc.getX509v3PKCert());
        if (!cert.isSignatureValid(new JcaContentVerifierProviderBuilder().setProvider("BC").build(ca)))
            fail("issued certificate does not verify with the CA certificate");
        if (!cert.getIssuer().equals(ca.getSubject())) fail("issuer " + cert.getIssuer() + " is not " + ca.getSubject());
        if (!cert.isValidOn(new Date())) fail("issued certificate is not valid now");
        if (subject != null && !cert.getSubject().equals(subject))
            fail("issued subject \"" + cert.getSubject() + "\", requested \"" + subject + "\"");
        if (!Arrays.equals(cert.getSubjectPublicKeyInfo().getPublicKeyData().getBytes(), spki.getPublicKeyData().getBytes()))
            fail("issued certificate does not carry the requested public key");
        return cert;
    }

    /** certConf for CERT, protected with MAC or SIGNER; expects a pkiConf. */
    static void confirm(String url, Exchange x, GeneralName sender, X500Name recip, X509CertificateHolder cert,
                        MacCalculator mac, ContentSigner signer, X509CertificateHolder signerCert,
                        String secret, X509CertificateHolder ca, String expectProt) throws Exception {
        CertificateConfirmationContent cc = new CertificateConfirmationContentBuilder()
            .addAcceptedCertificate(cert, CERT_REQ_ID).build(new JcaDigestCalculatorProviderBuilder().build());
        ProtectedPKIMessageBuilder b = builder(x, sender, recip, new PKIBody(PKIBody.TYPE_CERT_CONFIRM, cc.toASN1Structure()));
        if (signerCert != null) b.addCMPCertificate(signerCert);
        PKIMessage m = (mac != null ? b.build(mac) : b.build(signer)).toASN1Structure();
        GeneralPKIMessage g = check(post(url, m), x, expectProt, secret, ca);
        if (g.getBody().getType() != PKIBody.TYPE_CONFIRM)
            fail("certConf answered with " + bodyName(g.getBody().getType()) + ", not pkiConf");
    }

    // ---- modes ----------------------------------------------------------------------------

    static void enrollPbm(String url, String secret, String ref, String subj, String caFile, String out,
                          String outKey) throws Exception {
        X509CertificateHolder ca = readCert(caFile);
        X500Name subject = new X500Name(subj);
        KeyPair kp = newKey("EC");
        SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded());
        Exchange x = new Exchange();
        GeneralName sender = new GeneralName(subject);
        ProtectedPKIMessageBuilder b = builder(x, sender, ca.getSubject(),
            certReqBody(PKIBody.TYPE_INIT_REQ, spki, subject, kp.getPrivate(), null));
        b.setSenderKID(ref.getBytes(StandardCharsets.UTF_8));
        PKIMessage ir = b.build(pbm(secret)).toASN1Structure();
        GeneralPKIMessage ip = check(post(url, ir), x, "any", secret, ca);
        String prot = protName(ip);
        X509CertificateHolder cert = issued(ip, PKIBody.TYPE_INIT_REP, subject, spki, ca);
        // certConf protected like the ir (PBM, same senderKID)
        CertificateConfirmationContent cc = new CertificateConfirmationContentBuilder()
            .addAcceptedCertificate(cert, CERT_REQ_ID).build(new JcaDigestCalculatorProviderBuilder().build());
        ProtectedPKIMessageBuilder cb = builder(x, sender, ca.getSubject(),
            new PKIBody(PKIBody.TYPE_CERT_CONFIRM, cc.toASN1Structure()));
        cb.setSenderKID(ref.getBytes(StandardCharsets.UTF_8));
        GeneralPKIMessage conf = check(post(url, cb.build(pbm(secret)).toASN1Structure()), x, "any", secret, ca);
        if (conf.getBody().getType() != PKIBody.TYPE_CONFIRM)
            fail("certConf answered with " + bodyName(conf.getBody().getType()) + ", not pkiConf");
        writePem(out, cert);
        writePem(outKey, kp.getPrivate());
        System.out.println("OK " + mode + ": ip accepted protection=" + prot + " subject=\"" + cert.getSubject()
                           + "\" serial=" + cert.getSerialNumber().toString(16) + " pkiconf protection=" + protName(conf));
    }

    static void irExpectError(String url, String secret, String ref, String subj, String caFile, String want)
        throws Exception {
        X509CertificateHolder ca = readCert(caFile);
        X500Name subject = new X500Name(subj);
        KeyPair kp = newKey("EC");
        SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded());
        Exchange x = new Exchange();
        ProtectedPKIMessageBuilder b = builder(x, new GeneralName(subject), ca.getSubject(),
            certReqBody(PKIBody.TYPE_INIT_REQ, spki, subject, kp.getPrivate(), null));
        b.setSenderKID(ref.getBytes(StandardCharsets.UTF_8));
        byte[] rsp = post(url, b.build(pbm(secret)).toASN1Structure());
        // A refused request may be answered unprotected (RFC 9810 5.1.3.5: the server cannot
        // protect with a secret it could not check); a protected answer must still verify.
        GeneralPKIMessage g = check(rsp, x, "none-ok", secret, ca);
        if (g.getBody().getType() != PKIBody.TYPE_ERROR) fail("expected an error message, got " + bodyName(g.getBody().getType()));
        ErrorMsgContent e = ErrorMsgContent.getInstance(g.getBody().getContent());
        PKIStatusInfo si = e.getPKIStatusInfo();
        String fi = failInfoNames(si.getFailInfo());
        String line = "error " + describe(si) + " protection=" + protName(g);
        if (si.getStatus().intValue() != PKIStatus.REJECTION || !Arrays.asList(fi.split(",")).contains(want))
            fail(line + " (expected rejection with failInfo " + want + ")");
        System.out.println("OK " + mode + ": " + line);
    }

    static void enrollSig(int type, String url, String certFile, String keyFile, String subj, String caFile,
                          String out, String outKey) throws Exception {
        X509CertificateHolder ca = readCert(caFile);
        X509CertificateHolder old = readCert(certFile);
        PrivateKey oldKey = readKey(keyFile);
        boolean kur = type == PKIBody.TYPE_KEY_UPDATE_REQ;
        X500Name subject = subj != null ? new X500Name(subj) : old.getSubject();
        KeyPair kp = newKey(kur ? "EC" : "RSA");
        SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded());
        Exchange x = new Exchange();
        GeneralName sender = new GeneralName(old.getSubject());
        ProtectedPKIMessageBuilder b = builder(x, sender, ca.getSubject(),
            certReqBody(type, spki, subject, kp.getPrivate(), kur ? old : null));
        Extension ski = old.getExtension(Extension.subjectKeyIdentifier);
        if (ski != null) b.setSenderKID(SubjectKeyIdentifier.getInstance(ski.getParsedValue()).getKeyIdentifier());
        b.addCMPCertificate(old);
        ContentSigner s = signer(oldKey);
        GeneralPKIMessage rep = check(post(url, b.build(s).toASN1Structure()), x, "sig", null, ca);
        int want = kur ? PKIBody.TYPE_KEY_UPDATE_REP : PKIBody.TYPE_CERT_REP;
        X509CertificateHolder cert = issued(rep, want, subject, spki, ca);
        if (cert.getSerialNumber().equals(old.getSerialNumber())) fail("new certificate has the old serial number");
        confirm(url, x, sender, ca.getSubject(), cert, null, signer(oldKey), old, null, ca, "sig");
        writePem(out, cert);
        writePem(outKey, kp.getPrivate());
        System.out.println("OK " + mode + ": " + bodyName(want) + " accepted protection=signature subject=\""
                           + cert.getSubject() + "\" serial=" + cert.getSerialNumber().toString(16) + " pkiconf");
    }

    static void revokePbm(String url, String secret, String ref, String certFile, String caFile,
                          boolean expectRevoked) throws Exception {
        X509CertificateHolder ca = readCert(caFile);
        X509CertificateHolder cert = readCert(certFile);
        RevocationDetails rd = new RevocationDetailsBuilder().setIssuer(cert.getIssuer())
            .setSerialNumber(cert.getSerialNumber()).build();
        Exchange x = new Exchange();
        ProtectedPKIMessageBuilder b = builder(x, new GeneralName(new X500Name("CN=bcra")), ca.getSubject(),
            new PKIBody(PKIBody.TYPE_REVOCATION_REQ, new RevReqContent(rd.toASN1Structure())));
        b.setSenderKID(ref.getBytes(StandardCharsets.UTF_8));
        GeneralPKIMessage g = check(post(url, b.build(pbm(secret)).toASN1Structure()), x,
                                    expectRevoked ? "none-ok" : "any", secret, ca);
        int t = g.getBody().getType();
        PKIStatusInfo si;
        if (t == PKIBody.TYPE_REVOCATION_REP) {
            RevRepContent rp = RevRepContent.getInstance(g.getBody().getContent());
            if (rp.getStatus().length != 1) fail("rp has " + rp.getStatus().length + " status entries");
            si = rp.getStatus()[0];
        } else if (t == PKIBody.TYPE_ERROR && expectRevoked) {
            si = ErrorMsgContent.getInstance(g.getBody().getContent()).getPKIStatusInfo();
        } else {
            fail("expected rp, got " + bodyName(t));
            return;
        }
        String line = bodyName(t) + " " + describe(si) + " protection=" + protName(g) + " serial="
                      + cert.getSerialNumber().toString(16);
        if (expectRevoked) {
            if (si.getStatus().intValue() != PKIStatus.REJECTION
                || !Arrays.asList(failInfoNames(si.getFailInfo()).split(",")).contains("certRevoked"))
                fail(line + " (expected rejection with failInfo certRevoked)");
        } else if (si.getStatus().intValue() != PKIStatus.GRANTED) {
            fail(line + " (expected accepted)");
        }
        System.out.println("OK " + mode + ": " + line);
    }
}
