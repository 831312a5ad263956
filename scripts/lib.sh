# scripts/lib.sh - shared by scripts/run and scripts/test: install what is missing, quietly.

# ensure_packages PKG... : apt-get install the Debian packages that are not installed yet
# (one apt-get update first, only when something is missing).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
}

BUILD_PACKAGES=(gcc meson ninja-build pkg-config libevent-dev libssl-dev liblmdb-dev
    libjansson-dev openssl)
