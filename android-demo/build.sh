#!/usr/bin/env bash
# Builds android-demo/build/vqexport-demo.apk without Gradle or the Android SDK:
# Maven fetches the libraries, javac compiles for Java 8, dx dexes, aapt2 links the manifest and
# assets against Debian's framework-res.apk, zip adds dex + native libs, zipalign, apksigner (v2+).
#
# Environment:
#   VQX_ORT_ANDROID_AAR  path to an onnxruntime-android .aar to bundle (its Java classes and its
#                        arm64-v8a/x86_64 natives). Also picked up from android-demo/libs/*.aar.
#                        Without it, the ONNX Runtime Java API is bundled from the desktop jar and
#                        .onnx models report "native library missing" on the phone (see README).
#   VQX_SKIP_ASSETS=1    do not run the Python asset generator (an APK without bundled models).
set -euo pipefail

DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DEMO/.." && pwd)"
BUILD="$DEMO/build"
LIBS="$DEMO/target/android-libs"
PY="${PY:-$ROOT/.venv/bin/python}"
APK="$BUILD/vqexport-demo.apk"
ABIS="arm64-v8a x86_64"
MIN_SDK=26
TARGET_SDK=34

say() { echo "[build.sh] $*"; }
loud() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

# ---------------------------------------------------------------- tools (Debian packages)
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk
need_pkgs=()
command -v aapt2 >/dev/null || need_pkgs+=(aapt)
command -v zipalign >/dev/null || need_pkgs+=(zipalign)
command -v apksigner >/dev/null || need_pkgs+=(apksigner)
command -v dexdump >/dev/null || need_pkgs+=(dexdump)
command -v zip >/dev/null || need_pkgs+=(zip)
command -v unzip >/dev/null || need_pkgs+=(unzip)
command -v mvn >/dev/null || need_pkgs+=(maven)
command -v javac >/dev/null || need_pkgs+=(openjdk-17-jdk-headless)
[ -f "$FRAMEWORK_RES" ] || need_pkgs+=(android-framework-res)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- libraries (Maven Central)
if [ ! -f "$LIBS/tensorflow-lite.aar" ] || [ ! -f "$LIBS/tensorflow-lite-api.aar" ] || \
   [ ! -f "$LIBS/onnxruntime.jar" ] || [ ! -f "$LIBS/dalvik-dx.jar" ] || [ ! -f "$LIBS/android.jar" ]; then
    say "fetching libraries with Maven"
    mvn -B -q -f "$DEMO/pom.xml" dependency:copy@android-libs
fi

rm -rf "$BUILD/classes" "$BUILD/libjars" "$BUILD/apk" "$BUILD"/*.apk "$BUILD"/*.apk.idsig
mkdir -p "$BUILD/classes" "$BUILD/libjars" "$BUILD/apk"

# classes.jar and natives out of the AARs
for aar in tensorflow-lite tensorflow-lite-api; do
    unzip -q -o -j "$LIBS/$aar.aar" classes.jar -d "$BUILD/libjars/tmp"
    mv "$BUILD/libjars/tmp/classes.jar" "$BUILD/libjars/$aar.jar"
done
for abi in $ABIS; do
    mkdir -p "$BUILD/apk/lib/$abi"
    unzip -q -o -j "$LIBS/tensorflow-lite.aar" "jni/$abi/*.so" -d "$BUILD/apk/lib/$abi"
done

ORT_AAR="${VQX_ORT_ANDROID_AAR:-}"
if [ -z "$ORT_AAR" ]; then
    ORT_AAR="$(ls "$DEMO"/libs/onnxruntime-android*.aar 2>/dev/null | head -n1 || true)"
fi
if [ -n "$ORT_AAR" ]; then
    say "ONNX Runtime for Android from $ORT_AAR"
    unzip -q -o -j "$ORT_AAR" classes.jar -d "$BUILD/libjars/tmp"
    mv "$BUILD/libjars/tmp/classes.jar" "$BUILD/libjars/onnxruntime.jar"
    for abi in $ABIS; do
        unzip -q -o -j "$ORT_AAR" "jni/$abi/*.so" -d "$BUILD/apk/lib/$abi"
    done
else
    loud "No onnxruntime-android AAR (Maven Central does not serve it to this machine).
!!! Bundling the ONNX Runtime Java API from the desktop jar WITHOUT Android natives:
!!! .onnx models will report 'UnsatisfiedLinkError' on a phone. To fix, put the AAR at
!!! android-demo/libs/onnxruntime-android.aar or set VQX_ORT_ANDROID_AAR=/path/to.aar."
    # Only the Java classes: the desktop natives are for Linux/macOS/Windows, not Android.
    (cd "$BUILD/libjars" && mkdir -p ort && cd ort && unzip -q -o "$LIBS/onnxruntime.jar" 'ai/onnxruntime/*.class' \
        && zip -q -r ../onnxruntime.jar ai && cd .. && rm -rf ort)
fi
rm -rf "$BUILD/libjars/tmp"

# ---------------------------------------------------------------- compile and dex
LIBCP="$BUILD/libjars/tensorflow-lite.jar:$BUILD/libjars/tensorflow-lite-api.jar:$BUILD/libjars/onnxruntime.jar"
say "javac (release 8)"
find "$DEMO/src/main/java" "$DEMO/src/android/java" -name '*.java' > "$BUILD/sources.txt"
javac -nowarn -Xlint:-options --release 8 -encoding UTF-8 -cp "$LIBS/android.jar:$LIBCP" \
    -d "$BUILD/classes" @"$BUILD/sources.txt"

say "dx"
java -Xmx1g -cp "$LIBS/dalvik-dx.jar" com.android.dx.command.Main --dex --min-sdk-version=$MIN_SDK \
    --output="$BUILD/apk/classes.dex" "$BUILD/classes" \
    "$BUILD/libjars/tensorflow-lite.jar" "$BUILD/libjars/tensorflow-lite-api.jar" "$BUILD/libjars/onnxruntime.jar"

# ---------------------------------------------------------------- assets
ASSETS="$BUILD/assets"
if [ "${VQX_SKIP_ASSETS:-0}" != "1" ] && [ ! -f "$ASSETS/.complete" ]; then
    say "generating assets: $PY -m vqexport.zoo.android_assets $ASSETS"
    rm -rf "$ASSETS"
    mkdir -p "$ASSETS"
    "$PY" -m vqexport.zoo.android_assets "$ASSETS"
    touch "$ASSETS/.complete"
fi
mkdir -p "$ASSETS"
n_models=$(find "$ASSETS" -path '*/models/*' -type f 2>/dev/null | wc -l)
if [ "$n_models" -eq 0 ]; then
    loud "the APK bundles NO models (android-demo/build/assets/models is empty)"
fi
[ -f "$ASSETS/eval/mnist1000.vqds" ] || loud "the APK bundles NO eval set (assets/eval/mnist1000.vqds): no accuracy, no latency"

# ---------------------------------------------------------------- link, package, align, sign
say "aapt2 link"
# -0: model and eval files are stored uncompressed where aapt2 honours it (the app copies
# bundled models to its cache folder before opening them either way).
aapt2 link -o "$BUILD/base.apk" -I "$FRAMEWORK_RES" --manifest "$DEMO/AndroidManifest.xml" \
    -A "$ASSETS" --min-sdk-version $MIN_SDK --target-sdk-version $TARGET_SDK \
    --version-code 1 --version-name 0.1.0 -0 tflite -0 onnx -0 vqm -0 vqds

say "adding classes.dex and lib/"
(cd "$BUILD/apk" && zip -q -r "$BUILD/base.apk" classes.dex lib)

say "zipalign + apksigner"
zipalign -p -f 4 "$BUILD/base.apk" "$BUILD/aligned.apk"
KS="$BUILD/debug.keystore"
if [ ! -f "$KS" ]; then
    keytool -genkeypair -keystore "$KS" -storepass android -keypass android -alias androiddebugkey \
        -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" >/dev/null 2>&1
fi
apksigner sign --ks "$KS" --ks-pass pass:android --key-pass pass:android --ks-key-alias androiddebugkey \
    --min-sdk-version $MIN_SDK --v1-signing-enabled false --v2-signing-enabled true --v3-signing-enabled true \
    --out "$APK" "$BUILD/aligned.apk"
rm -f "$BUILD/base.apk" "$BUILD/aligned.apk"
say "built $APK ($(du -k "$APK" | cut -f1) KiB, $n_models bundled model file(s))"
