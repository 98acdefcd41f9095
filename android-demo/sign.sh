#!/usr/bin/env bash
# Signs an aligned APK with v2 and v3 schemes:  bash sign.sh IN.apk OUT.apk
#
# Release key, when VQX_RELEASE_KEYSTORE is set (passwords are read by apksigner from the
# environment, never put on a command line):
#   VQX_RELEASE_KEYSTORE       path of the keystore (JKS or PKCS12)
#   VQX_RELEASE_KEYSTORE_PASS  its password
#   VQX_RELEASE_KEY_ALIAS      the key's alias
#   VQX_RELEASE_KEY_PASS       the key's password (default: the keystore's)
# Otherwise the debug key: VQX_DEBUG_KEYSTORE, default ~/.android/debug.keystore (the Android
# SDK's own place and passwords, so an APK signed here installs over one from Android Studio on
# the same machine). It is created on first use and lives outside the repository, so `make clean`
# and a fresh clone keep it, and `adb install -r` keeps working.
set -euo pipefail

die() { echo "sign.sh: $*" >&2; exit 2; }

[ $# -eq 2 ] || die "usage: sign.sh IN.apk OUT.apk"
IN="$1"
OUT="$2"
[ -f "$IN" ] || die "$IN: no such APK"
MIN_SDK="${MIN_SDK:-26}"
common=(--min-sdk-version "$MIN_SDK" --v1-signing-enabled false --v2-signing-enabled true --v3-signing-enabled true)

if [ -n "${VQX_RELEASE_KEYSTORE:-}" ]; then
    [ -f "$VQX_RELEASE_KEYSTORE" ] || die "VQX_RELEASE_KEYSTORE=$VQX_RELEASE_KEYSTORE: no such file"
    [ -n "${VQX_RELEASE_KEYSTORE_PASS:-}" ] || die "VQX_RELEASE_KEYSTORE is set but VQX_RELEASE_KEYSTORE_PASS is not"
    [ -n "${VQX_RELEASE_KEY_ALIAS:-}" ] || die "VQX_RELEASE_KEYSTORE is set but VQX_RELEASE_KEY_ALIAS is not"
    export VQX_RELEASE_KEY_PASS="${VQX_RELEASE_KEY_PASS:-$VQX_RELEASE_KEYSTORE_PASS}"
    if ! apksigner sign --ks "$VQX_RELEASE_KEYSTORE" --ks-key-alias "$VQX_RELEASE_KEY_ALIAS" \
        --ks-pass env:VQX_RELEASE_KEYSTORE_PASS --key-pass env:VQX_RELEASE_KEY_PASS \
        "${common[@]}" --out "$OUT" "$IN"; then
        rm -f "$OUT" "$OUT.idsig"
        die "apksigner could not sign with $VQX_RELEASE_KEYSTORE (alias $VQX_RELEASE_KEY_ALIAS): wrong password or alias?"
    fi
    echo "signed $OUT with the release key in $VQX_RELEASE_KEYSTORE"
    exit 0
fi

KS="${VQX_DEBUG_KEYSTORE:-${HOME:?HOME is not set}/.android/debug.keystore}"
if [ ! -f "$KS" ]; then
    mkdir -p "$(dirname "$KS")"
    keytool -genkeypair -keystore "$KS" -storetype JKS -storepass android -keypass android \
        -alias androiddebugkey -keyalg RSA -keysize 2048 -validity 10000 \
        -dname "CN=Android Debug,O=Android,C=US" >/dev/null 2>&1 || die "keytool could not create $KS"
    echo "created the debug keystore $KS (keep it: reinstalling over an APK signed with another key fails)"
fi
apksigner sign --ks "$KS" --ks-pass pass:android --key-pass pass:android --ks-key-alias androiddebugkey \
    "${common[@]}" --out "$OUT" "$IN" || die "apksigner could not sign with the debug keystore $KS"
echo "signed $OUT with the debug key in $KS"
