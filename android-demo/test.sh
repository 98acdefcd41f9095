#!/usr/bin/env bash
# The Android demo's tests (make test-android):
#   1. builds the APK (build.sh) and checks it: signature, badging, native ABIs, dex contents;
#   2. writes test vectors with the Python package (make_test_vectors.py);
#   3. runs the JUnit 5 tests on the JVM through Maven Surefire (its "Tests run:" line is last).
# Exits non-zero when any check or test fails.
set -uo pipefail

DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DEMO/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
APK="$DEMO/build/vqexport-demo.apk"
VECTORS="$DEMO/target/vectors"
failures=0

ok() { echo "[test.sh] ok:   $*"; }
bad() { echo "[test.sh] FAIL: $*" >&2; failures=$((failures + 1)); }

# ---------------------------------------------------------------- 1. APK
if bash "$DEMO/build.sh"; then
    ok "build.sh built $APK ($(du -k "$APK" | cut -f1) KiB)"
else
    bad "build.sh failed"
fi

if [ -f "$APK" ]; then
    sig="$(apksigner verify -v "$APK" 2>&1)"
    if [ $? -eq 0 ] && grep -Eq "Verified using v[23] scheme .*: true" <<<"$sig"; then
        ok "apksigner verify (v2/v3 signature)"
    else
        bad "apksigner verify: $sig"
    fi
    if zipalign -c -p 4 "$APK" >/dev/null 2>&1; then ok "zipalign -c -p 4"; else bad "APK not aligned (zipalign -c -p 4)"; fi
    # Listings go through variables: under pipefail, `unzip | grep -q` fails whenever grep exits
    # at its first match before unzip has written everything (SIGPIPE), which flaked on CI.
    listing="$(unzip -l "$APK")"
    arsc="$(unzip -v "$APK" resources.arsc)"
    if grep -q " Stored " <<<"$arsc"; then ok "resources.arsc stored uncompressed"; else bad "resources.arsc is compressed"; fi

    badging="$(aapt2 dump badging "$APK" 2>&1)"
    grep -q "^package: name='dev.vqexport.demo'" <<<"$badging" && ok "package dev.vqexport.demo" || bad "package name: $(head -1 <<<"$badging")"
    grep -qx "sdkVersion:'26'" <<<"$badging" && ok "sdkVersion:'26'" || bad "sdkVersion is not 26"
    target="$(sed -n "s/^targetSdkVersion:'\([0-9]*\)'.*/\1/p" <<<"$badging")"
    if [ -n "$target" ] && [ "$target" -ge 34 ]; then ok "targetSdkVersion:'$target' >= 34"; else bad "targetSdkVersion '$target' < 34"; fi
    grep -qx "native-code: 'arm64-v8a' 'x86_64'" <<<"$badging" && ok "native-code: 'arm64-v8a' 'x86_64'" \
        || bad "native code: $(grep native-code <<<"$badging")"
    grep -q "launchable-activity: name='dev.vqexport.demo.MainActivity'" <<<"$badging" && ok "launchable MainActivity" \
        || bad "MainActivity is not the launchable activity"

    classes="$(dexdump "$APK" 2>/dev/null | sed -n "s/^  Class descriptor  : '\(.*\)'$/\1/p")"
    for c in Ldev/vqexport/demo/MainActivity\; Ldev/vqexport/demo/BenchRunner\; Ldev/vqexport/demo/core/VqmReader\; \
             Ldev/vqexport/demo/core/OrtRunner\; Lorg/tensorflow/lite/Interpreter\; Lai/onnxruntime/OrtSession\;; do
        grep -qxF "$c" <<<"$classes" && ok "dex has $c" || bad "dex lacks $c"
    done
    # No lambdas in the app's own code: Android has no LambdaMetafactory to bootstrap them.
    lambdas="$(dexdump -d "$APK" 2>/dev/null | awk '/^    #[0-9]+ +: \(in L/ {cls=$4} /invoke-custom/ && cls ~ /^\(?Ldev\/vqexport\// {print cls}' | sort -u)"
    [ -z "$lambdas" ] && ok "no invoke-custom (lambdas) in dev.vqexport classes" || bad "invoke-custom in: $lambdas"
    if grep -q " assets/models/" <<<"$listing"; then
        ok "bundles $(grep -c ' assets/models/' <<<"$listing") model file(s)"
    else
        bad "the APK bundles no models (vqexport.zoo.android_assets wrote none)"
    fi
else
    bad "no APK at $APK"
fi

# ---------------------------------------------------------------- 2. test vectors
rm -rf "$VECTORS"
if "$PY" "$DEMO/make_test_vectors.py" "$VECTORS"; then
    ok "test vectors in $VECTORS"
else
    bad "make_test_vectors.py failed"
fi

# ---------------------------------------------------------------- 3. JVM tests (last: Surefire's summary ends the output)
if [ "$failures" -gt 0 ]; then
    echo "[test.sh] $failures check(s) failed before the JVM tests" >&2
fi
mvn -B --no-transfer-progress -f "$DEMO/pom.xml" test -Dvectors.required=true -Dvectors.dir="$VECTORS"
mvn_rc=$?
if [ "$failures" -gt 0 ] || [ "$mvn_rc" -ne 0 ]; then
    echo "[test.sh] FAILED: $failures APK/vector check(s), Maven exit $mvn_rc" >&2
    exit 1
fi
