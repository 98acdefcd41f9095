#!/usr/bin/env bash
# The Android demo's tests (make test-android), everything that can be checked without a phone:
#   1. builds the APK (build.sh) and checks it: signature and its stable key, release signing with
#      a throwaway key, zipalign, badging (targetSdk >= 35, three ABIs, icon), dex contents (no ORT
#      without ORT_AAR, no invoke-custom), bundled assets, 16 KB alignment of the native libraries;
#   2. builds a second APK with a stand-in ORT_AAR and checks that ORT is then bundled, and that
#      the invoke-custom check catches the desktop ORT classes' lambdas;
#   3. writes test vectors with the Python package (make_test_vectors.py);
#   4. runs the JUnit 5 tests on the JVM through Maven Surefire (its "Tests run:" line is last).
# Exits non-zero when any check or test fails.
set -uo pipefail

DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DEMO/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
APK="$DEMO/build/vqexport-demo.apk"
VECTORS="$DEMO/target/vectors"
WORK="$DEMO/target/test-sh"
ABIS="'arm64-v8a' 'armeabi-v7a' 'x86_64'"
failures=0

ok() { echo "[test.sh] ok:   $*"; }
bad() { echo "[test.sh] FAIL: $*" >&2; failures=$((failures + 1)); }
check() { # DESCRIPTION COMMAND...: ok when the command succeeds
    local what="$1"
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

rm -rf "$WORK"
mkdir -p "$WORK"
# A C compiler links the 16 KB checker's two test libraries (build.sh installs the Android tools).
if ! command -v cc >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc libc6-dev >/dev/null
fi

# Classes of an APK's dex (one descriptor a line).
dex_classes() { dexdump "$1" 2>/dev/null | sed -n "s/^  Class descriptor  : '\(.*\)'$/\1/p"; }
# Classes whose code holds invoke-custom (a lambda or method reference dx did not desugar):
# Android has no LambdaMetafactory, so such a class fails to link on a phone.
invoke_custom_classes() {
    dexdump -d "$1" 2>/dev/null | awk '/^    #[0-9]+ +: \(in L/ {cls=$4} /invoke-custom/ {print cls}' | sort -u
}
signer_sha256() { apksigner verify --print-certs "$1" 2>/dev/null | sed -n 's/^Signer #1 certificate SHA-256 digest: //p'; }

# ---------------------------------------------------------------- 1. the APK
if bash "$DEMO/build.sh"; then
    ok "build.sh built $APK ($(du -k "$APK" | cut -f1) KiB)"
else
    bad "build.sh failed"
fi

if [ -f "$APK" ]; then
    sig="$(apksigner verify -v "$APK" 2>&1)"
    if [ $? -eq 0 ] && grep -q "Verified using v2 scheme .*: true" <<<"$sig" && grep -q "Verified using v3 scheme .*: true" <<<"$sig"; then
        ok "apksigner verify (v2 and v3 signatures)"
    else
        bad "apksigner verify: $sig"
    fi
    # The debug key lives outside build/ (make clean keeps it) and is the one that signed the APK.
    KS="${VQX_DEBUG_KEYSTORE:-$HOME/.android/debug.keystore}"
    case "$(cd "$(dirname "$KS")" && pwd)/" in
        "$DEMO/build/"*) bad "debug keystore $KS is inside android-demo/build (make clean deletes it)" ;;
        *) ok "debug keystore outside build/: $KS" ;;
    esac
    ks_sha="$(keytool -list -v -keystore "$KS" -storepass android -alias androiddebugkey 2>/dev/null \
        | sed -n 's/^[[:space:]]*SHA256: //p' | tr -d ':' | tr 'A-F' 'a-f')"
    if [ -n "$ks_sha" ] && [ "$ks_sha" = "$(signer_sha256 "$APK")" ]; then
        ok "APK signed by the stable debug key (SHA-256 ${ks_sha:0:16}...)"
    else
        bad "APK signer $(signer_sha256 "$APK") is not the debug keystore's key '$ks_sha'"
    fi

    check "zipalign -c -p 4" zipalign -c -p 4 "$APK"
    # Listings go through variables: under pipefail, `unzip | grep -q` fails whenever grep exits
    # at its first match before unzip has written everything (SIGPIPE), which flaked on CI.
    listing="$(unzip -l "$APK")"
    verbose="$(unzip -v "$APK")"
    grep -Eq " Stored .* resources.arsc$" <<<"$verbose" && ok "resources.arsc stored uncompressed" || bad "resources.arsc is compressed"
    deflated_models="$(grep -E ' assets/(models|eval)/' <<<"$verbose" | grep -v ' Stored ' || true)"
    [ -z "$deflated_models" ] && ok "models and eval set stored uncompressed (aapt2 -0 .ext)" || bad "compressed assets: $deflated_models"

    badging="$(aapt2 dump badging "$APK" 2>&1)"
    grep -q "^package: name='dev.vqexport.demo'" <<<"$badging" && ok "package dev.vqexport.demo" || bad "package name: $(head -1 <<<"$badging")"
    grep -qx "sdkVersion:'26'" <<<"$badging" && ok "sdkVersion:'26'" || bad "sdkVersion is not 26"
    target="$(sed -n "s/^targetSdkVersion:'\([0-9]*\)'.*/\1/p" <<<"$badging")"
    if [ -n "$target" ] && [ "$target" -ge 35 ]; then ok "targetSdkVersion:'$target' >= 35 (Play)"; else bad "targetSdkVersion '$target' < 35"; fi
    grep -qx "native-code: $ABIS" <<<"$badging" && ok "native-code: $ABIS" \
        || bad "native code: $(grep native-code <<<"$badging") (want $ABIS)"
    grep -q "launchable-activity: name='dev.vqexport.demo.MainActivity'" <<<"$badging" && ok "launchable MainActivity" \
        || bad "MainActivity is not the launchable activity"
    grep -q "^application: .* icon='res/mipmap-anydpi-v26/ic_launcher.xml'" <<<"$badging" && ok "launcher icon (adaptive, mipmap)" \
        || bad "no launcher icon: $(grep '^application:' <<<"$badging")"

    classes="$(dex_classes "$APK")"
    for c in MainActivity BenchRunner BenchSession core/VqmReader core/BenchArgs; do
        grep -qxF "Ldev/vqexport/demo/$c;" <<<"$classes" && ok "dex has $c" || bad "dex lacks $c"
    done
    grep -qxF "Lorg/tensorflow/lite/Interpreter;" <<<"$classes" && ok "dex has the TFLite Interpreter" || bad "dex lacks org.tensorflow.lite.Interpreter"
    # ONNX honestly: without ORT_AAR no ORT classes, no OrtRunner and no .onnx in the APK.
    n_ort="$(grep -c '^Lai/onnxruntime/' <<<"$classes")"
    [ "$n_ort" -eq 0 ] && ok "no ONNX Runtime classes without ORT_AAR" || bad "$n_ort ONNX Runtime classes in an APK built without ORT_AAR"
    grep -qxF "Ldev/vqexport/demo/core/OrtRunner;" <<<"$classes" && bad "OrtRunner in an APK without ORT" || ok "no OrtRunner without ORT_AAR"
    grep -qi '\.onnx$' <<<"$listing" && bad ".onnx files in an APK without ORT: $(grep -i '\.onnx$' <<<"$listing" | awk '{print $4}')" \
        || ok "no .onnx files without ORT_AAR"
    lambdas="$(invoke_custom_classes "$APK")"
    [ -z "$lambdas" ] && ok "no invoke-custom anywhere in the dex" || bad "invoke-custom (cannot link on Android) in: $lambdas"
    if grep -q " assets/models/" <<<"$listing"; then
        ok "bundles $(grep -c ' assets/models/' <<<"$listing") model file(s)"
    else
        bad "the APK bundles no models (vqexport.zoo.android_assets wrote none)"
    fi

    # 16 KB pages. First the checker itself, on libraries linked here for 4 KB and 16 KB pages.
    echo 'int vqx_f(void) { return 1; } int vqx_d[64] = {1};' > "$WORK/x.c"
    if cc -shared -fPIC -o "$WORK/x4k.so" -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 "$WORK/x.c" \
        && cc -shared -fPIC -o "$WORK/x16k.so" -Wl,-z,max-page-size=16384 -Wl,-z,common-page-size=16384 "$WORK/x.c"; then
        out16="$(bash "$DEMO/elf_16kb.sh" "$WORK/x16k.so")"
        rc16=$?
        out4="$(bash "$DEMO/elf_16kb.sh" "$WORK/x4k.so")"
        rc4=$?
        [ $rc16 -eq 0 ] && [[ "$out16" == "ok 16K "* ]] && [ $rc4 -eq 1 ] && [[ "$out4" == "bad 4K "* ]] \
            && ok "elf_16kb.sh tells a 16 KB library ($out16) from a 4 KB one" \
            || bad "elf_16kb.sh: 16K -> '$out16' ($rc16), 4K -> '$out4' ($rc4)"
    else
        bad "cannot link the 16 KB checker's test libraries with cc"
    fi
    mkdir -p "$WORK/lib"
    unzip -q -o "$APK" 'lib/*' -d "$WORK"
    align="$(bash "$DEMO/elf_16kb.sh" "$WORK"/lib/*/*.so)"
    align_rc=$?
    echo "$align" | sed 's/^/[test.sh]       /'
    n_so="$(grep -c . <<<"$align")"
    if [ "$n_so" -lt 3 ]; then
        bad "expected a native library per ABI, found $n_so"
    elif [ $align_rc -eq 0 ]; then
        ok "all $n_so native libraries are 16 KB aligned (readelf)"
    else
        # The one known gap: Maven Central's TFLite stops at 2.16.1, whose libraries are 4 KB
        # aligned (LiteRT 1.4+, 16 KB aligned, is on Google's Maven only). Anything else fails.
        others="$(grep -v '^ok ' <<<"$align" | grep -v '/libtensorflowlite_jni\.so:' || true)"
        if [ -n "$others" ] || [ -n "${TFLITE_AAR:-}" ] || [ "${VQX_REQUIRE_16KB:-0}" = "1" ]; then
            bad "native libraries not 16 KB aligned: $(grep -v '^ok ' <<<"$align" | cut -d: -f1 | tr '\n' ' ')"
        else
            echo "[test.sh] KNOWN GAP: TFLite 2.16.1's libtensorflowlite_jni.so is 4 KB aligned; Play needs 16 KB" \
                "for targetSdk 35. Build with TFLITE_AAR=litert-1.4.0.aar (Google's Maven) and VQX_REQUIRE_16KB=1."
        fi
    fi

    # Release signing from the environment, with a throwaway key.
    UNSIGNED="$DEMO/build/vqexport-demo-unsigned.apk"
    if keytool -genkeypair -keystore "$WORK/release.p12" -storetype PKCS12 -storepass 'throw away' \
        -alias vqxrelease -keyalg RSA -keysize 2048 -validity 2 -dname "CN=vqexport throwaway" >/dev/null 2>&1; then
        rel="$(VQX_RELEASE_KEYSTORE="$WORK/release.p12" VQX_RELEASE_KEYSTORE_PASS='throw away' VQX_RELEASE_KEY_ALIAS=vqxrelease \
            bash "$DEMO/sign.sh" "$UNSIGNED" "$WORK/release.apk" 2>&1)"
        certs="$(apksigner verify --print-certs "$WORK/release.apk" 2>&1)"
        grep -q "Signer #1 certificate DN: CN=vqexport throwaway" <<<"$certs" \
            && ok "release signing from VQX_RELEASE_* (throwaway key)" || bad "release signing: $rel / $certs"
        grep -q 'throw away' <<<"$rel" && bad "sign.sh printed the release password"
        wrong="$(VQX_RELEASE_KEYSTORE="$WORK/release.p12" VQX_RELEASE_KEYSTORE_PASS=wrong VQX_RELEASE_KEY_ALIAS=vqxrelease \
            bash "$DEMO/sign.sh" "$UNSIGNED" "$WORK/wrong.apk" 2>&1)"
        rc=$?
        [ $rc -eq 2 ] && [ ! -e "$WORK/wrong.apk" ] && grep -q "^sign.sh: apksigner could not sign" <<<"$wrong" \
            && ok "a wrong release password: exit 2, one sign.sh line, no APK" || bad "wrong password: rc $rc, $wrong"
        nopass="$(VQX_RELEASE_KEYSTORE="$WORK/release.p12" bash "$DEMO/sign.sh" "$UNSIGNED" "$WORK/nopass.apk" 2>&1)"
        rc=$?
        [ $rc -eq 2 ] && [ "$nopass" = "sign.sh: VQX_RELEASE_KEYSTORE is set but VQX_RELEASE_KEYSTORE_PASS is not" ] \
            && ok "a missing release password is a one-line error" || bad "missing password: rc $rc, $nopass"
    else
        bad "keytool could not make a throwaway release key"
    fi
else
    bad "no APK at $APK"
fi

# ---------------------------------------------------------------- 2. with ORT_AAR
# A stand-in AAR: the desktop ONNX Runtime classes (which hold lambdas: invoke-custom) and a
# 16 KB-aligned library per ABI. It proves the bundling and that the dex check finds lambdas.
ORT_JAR="$(ls "$DEMO"/target/ort-desktop/onnxruntime-*.jar 2>/dev/null | head -n1)"
if [ -z "$ORT_JAR" ]; then
    mvn -B -q -f "$DEMO/pom.xml" dependency:copy-dependencies -DincludeArtifactIds=onnxruntime \
        -DoutputDirectory="$DEMO/target/ort-desktop" >/dev/null 2>&1
    ORT_JAR="$(ls "$DEMO"/target/ort-desktop/onnxruntime-*.jar 2>/dev/null | head -n1)"
fi
if [ -n "$ORT_JAR" ] && [ -f "$WORK/x16k.so" ] && [ -d "$DEMO/build/assets" ]; then
    FAKE="$WORK/fake-ort"
    mkdir -p "$FAKE/cls"
    (cd "$FAKE/cls" && unzip -q -o "$ORT_JAR" 'ai/onnxruntime/*.class' && zip -q -r ../classes.jar ai)
    for abi in arm64-v8a armeabi-v7a x86_64; do
        mkdir -p "$FAKE/jni/$abi"
        cp "$WORK/x16k.so" "$FAKE/jni/$abi/libonnxruntime.so"
    done
    (cd "$FAKE" && zip -q -r "$WORK/onnxruntime-android-standin.aar" classes.jar jni)
    if ORT_AAR="$WORK/onnxruntime-android-standin.aar" VQX_BUILD_DIR="$WORK/ort-build" VQX_ASSETS_DIR="$DEMO/build/assets" \
        bash "$DEMO/build.sh" >"$WORK/ort-build.log" 2>&1; then
        OAPK="$WORK/ort-build/vqexport-demo.apk"
        oclasses="$(dex_classes "$OAPK")"
        grep -qxF "Lai/onnxruntime/OrtSession;" <<<"$oclasses" && grep -qxF "Ldev/vqexport/demo/core/OrtRunner;" <<<"$oclasses" \
            && ok "ORT_AAR: ORT classes and OrtRunner bundled" || bad "ORT_AAR: ORT classes or OrtRunner missing"
        olisting="$(unzip -l "$OAPK")"
        grep -qi 'assets/models/.*\.onnx$' <<<"$olisting" && ok "ORT_AAR: .onnx models bundled" || bad "ORT_AAR: no .onnx models"
        [ "$(grep -c 'lib/.*/libonnxruntime.so$' <<<"$olisting")" -eq 3 ] && ok "ORT_AAR: its library for each ABI" \
            || bad "ORT_AAR: libonnxruntime.so not bundled for the three ABIs"
        olambdas="$(invoke_custom_classes "$OAPK")"
        grep -q '^(\?Lai/onnxruntime/' <<<"$olambdas" && ! grep -qv 'Lai/onnxruntime/' <<<"$olambdas" \
            && ok "the invoke-custom check finds the desktop ORT lambdas ($(grep -c . <<<"$olambdas") classes), only there" \
            || bad "invoke-custom check on the desktop ORT classes: '$olambdas'"
    else
        bad "build.sh with ORT_AAR failed: $(tail -5 "$WORK/ort-build.log")"
    fi
else
    bad "cannot run the ORT_AAR check (desktop ORT jar '$ORT_JAR', test library or assets missing)"
fi

# ---------------------------------------------------------------- 3. test vectors
rm -rf "$VECTORS"
if "$PY" "$DEMO/make_test_vectors.py" "$VECTORS"; then
    ok "test vectors in $VECTORS"
else
    bad "make_test_vectors.py failed"
fi

# ---------------------------------------------------------------- 4. JVM tests (last: Surefire's summary ends the output)
if [ "$failures" -gt 0 ]; then
    echo "[test.sh] $failures check(s) failed before the JVM tests" >&2
fi
mvn -B --no-transfer-progress -f "$DEMO/pom.xml" test -Dvectors.required=true -Dvectors.dir="$VECTORS"
mvn_rc=$?
if [ "$failures" -gt 0 ] || [ "$mvn_rc" -ne 0 ]; then
    echo "[test.sh] FAILED: $failures APK/vector check(s), Maven exit $mvn_rc" >&2
    exit 1
fi
