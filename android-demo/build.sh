#!/usr/bin/env bash
# Builds android-demo/build/vqexport-demo.apk without Gradle or the Android SDK:
# Maven fetches the libraries, javac compiles for Java 8 against the API 35 framework classes,
# dx dexes, aapt2 compiles the icon and links the manifest and assets against Debian's
# framework-res.apk, zip adds dex + native libs, zipalign, then sign.sh (v2 + v3).
#
# Environment (or make variables: `make apk ORT_AAR=/path/to/onnxruntime-android.aar`):
#   ORT_AAR          an onnxruntime-android .aar: bundles its classes, its natives and the .onnx
#                    models. Without it the APK has no ONNX Runtime classes and no .onnx files, and
#                    the app says ONNX is unavailable. Also read: VQX_ORT_ANDROID_AAR and
#                    android-demo/libs/onnxruntime-android*.aar.
#   TFLITE_AAR       a TFLite runtime .aar to use instead of Maven Central's
#                    org.tensorflow:tensorflow-lite 2.16.1, e.g. LiteRT's litert-1.4.0.aar, whose
#                    natives are 16 KB aligned (Google's Maven, not Maven Central: fetch it by
#                    hand); TFLITE_API_AAR the matching API .aar (litert-api-1.4.0.aar), if separate.
#   VQX_RELEASE_KEYSTORE, VQX_RELEASE_KEYSTORE_PASS, VQX_RELEASE_KEY_ALIAS, VQX_RELEASE_KEY_PASS
#                    sign with a release key instead of the debug key (see sign.sh).
#   VQX_SKIP_ASSETS=1    do not run the Python asset generator (an APK without bundled models).
#   VQX_BUILD_DIR, VQX_ASSETS_DIR   where to build (default android-demo/build) and where the
#                    generated assets are (default BUILD/assets); test.sh uses them for a second APK.
set -euo pipefail

DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DEMO/.." && pwd)"
BUILD="${VQX_BUILD_DIR:-$DEMO/build}"
LIBS="$DEMO/target/android-libs"
PY="${PY:-$ROOT/.venv/bin/python}"
APK="$BUILD/vqexport-demo.apk"
# Play serves each phone the ABI it needs from one APK; these are the three the runtime ships
# for phones and emulators (32-bit x86 is left out: no current device needs it).
ABIS="arm64-v8a armeabi-v7a x86_64"
MIN_SDK=26
# Play requires targetSdk >= 35 for new apps and updates since 2025-08-31. The code compiles
# against API 35's classes (Robolectric's android-all 15 from Maven Central); resources link
# against Debian's framework-res.apk (API 29), the newest Debian's aapt2 can read.
TARGET_SDK=35
export MIN_SDK

say() { echo "[build.sh] $*"; }
loud() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}
die() { echo "[build.sh] error: $*" >&2; exit 2; }

# ---------------------------------------------------------------- tools (Debian packages)
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk
need_pkgs=()
command -v aapt2 >/dev/null || need_pkgs+=(aapt)
command -v zipalign >/dev/null || need_pkgs+=(zipalign)
command -v apksigner >/dev/null || need_pkgs+=(apksigner)
command -v dexdump >/dev/null || need_pkgs+=(dexdump)
command -v readelf >/dev/null || need_pkgs+=(binutils)
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
   [ ! -f "$LIBS/dalvik-dx.jar" ] || [ ! -f "$LIBS/android-all.jar" ]; then
    say "fetching libraries with Maven"
    mvn -B -q -f "$DEMO/pom.xml" dependency:copy@android-libs
fi
ANDROID_JAR="$LIBS/android-all.jar"

TFLITE_AAR="${TFLITE_AAR:-$LIBS/tensorflow-lite.aar}"
TFLITE_API_AAR="${TFLITE_API_AAR:-}"
[ -n "$TFLITE_API_AAR" ] || { [ "$TFLITE_AAR" = "$LIBS/tensorflow-lite.aar" ] && TFLITE_API_AAR="$LIBS/tensorflow-lite-api.aar"; } || true
ORT_AAR="${ORT_AAR:-${VQX_ORT_ANDROID_AAR:-}}"
if [ -z "$ORT_AAR" ]; then
    ORT_AAR="$(ls "$DEMO"/libs/onnxruntime-android*.aar 2>/dev/null | head -n1 || true)"
fi
for f in "$TFLITE_AAR" $TFLITE_API_AAR $ORT_AAR; do
    [ -f "$f" ] || die "$f: no such .aar"
    unzip -tq "$f" >/dev/null 2>&1 || die "$f: not a zip (.aar) file"
done

rm -rf "$BUILD/classes" "$BUILD/libjars" "$BUILD/apk" "$BUILD/apk-assets" "$BUILD"/*.apk "$BUILD"/*.apk.idsig
mkdir -p "$BUILD/classes" "$BUILD/libjars" "$BUILD/apk"

# classes.jar and natives out of the AARs; every ABI must be there.
jar_of() { # AAR NAME: its classes.jar as libjars/NAME.jar
    rm -rf "$BUILD/libjars/tmp"
    unzip -q -o -j "$1" classes.jar -d "$BUILD/libjars/tmp" || die "$1 has no classes.jar"
    mv "$BUILD/libjars/tmp/classes.jar" "$BUILD/libjars/$2.jar"
    rm -rf "$BUILD/libjars/tmp"
}
natives_of() { # AAR: its jni/ABI/*.so into lib/ABI
    for abi in $ABIS; do
        mkdir -p "$BUILD/apk/lib/$abi"
        unzip -q -o -j "$1" "jni/$abi/*.so" -d "$BUILD/apk/lib/$abi" 2>/dev/null \
            || die "$1 has no native library for $abi (jni/$abi/*.so)"
    done
}
jar_of "$TFLITE_AAR" tflite
natives_of "$TFLITE_AAR"
LIBJARS=("$BUILD/libjars/tflite.jar")
if [ -n "$TFLITE_API_AAR" ]; then
    jar_of "$TFLITE_API_AAR" tflite-api
    LIBJARS+=("$BUILD/libjars/tflite-api.jar")
fi
say "TFLite runtime from $TFLITE_AAR"

find "$DEMO/src/main/java" "$DEMO/src/android/java" -name '*.java' > "$BUILD/sources.txt"
if [ -n "$ORT_AAR" ]; then
    say "ONNX Runtime for Android from $ORT_AAR: bundling its classes, natives and the .onnx models"
    jar_of "$ORT_AAR" onnxruntime
    natives_of "$ORT_AAR"
    LIBJARS+=("$BUILD/libjars/onnxruntime.jar")
else
    # Without an Android ORT there is nothing to run .onnx files with: no ORT classes, no OrtRunner,
    # no .onnx assets. The app finds OrtRunner missing and lists ONNX as unavailable.
    say "ONNX: not bundled (no ORT_AAR; Maven Central does not serve onnxruntime-android here)"
    grep -v '/core/OrtRunner\.java$' "$BUILD/sources.txt" > "$BUILD/sources.tmp" && mv "$BUILD/sources.tmp" "$BUILD/sources.txt"
fi

# ---------------------------------------------------------------- compile and dex
LIBCP="$(IFS=:; echo "${LIBJARS[*]}")"
say "javac (release 8, API $TARGET_SDK classes)"
javac -nowarn -Xlint:-options --release 8 -encoding UTF-8 -cp "$ANDROID_JAR:$LIBCP" \
    -d "$BUILD/classes" @"$BUILD/sources.txt"

say "dx"
java -Xmx1g -cp "$LIBS/dalvik-dx.jar" com.android.dx.command.Main --dex --min-sdk-version=$MIN_SDK \
    --output="$BUILD/apk/classes.dex" "$BUILD/classes" "${LIBJARS[@]}"

# ---------------------------------------------------------------- assets
ASSETS="${VQX_ASSETS_DIR:-$BUILD/assets}"
if [ "${VQX_SKIP_ASSETS:-0}" != "1" ] && [ ! -f "$ASSETS/.complete" ]; then
    say "generating assets: $PY -m vqexport.zoo.android_assets $ASSETS"
    rm -rf "$ASSETS"
    mkdir -p "$ASSETS"
    "$PY" -m vqexport.zoo.android_assets "$ASSETS"
    touch "$ASSETS/.complete"
fi
mkdir -p "$ASSETS"
# What goes into the APK: the generated assets (hard links), less .onnx files without ORT.
APK_ASSETS="$BUILD/apk-assets"
mkdir -p "$APK_ASSETS"
cp -al "$ASSETS/." "$APK_ASSETS/" 2>/dev/null || cp -a "$ASSETS/." "$APK_ASSETS/"
rm -f "$APK_ASSETS/.complete"
[ -n "$ORT_AAR" ] || find "$APK_ASSETS" -type f -iname '*.onnx' -delete
n_models=$(find "$APK_ASSETS" -path '*/models/*' -type f 2>/dev/null | wc -l)
if [ "$n_models" -eq 0 ]; then
    loud "the APK bundles NO models ($ASSETS/models is empty)"
fi
[ -f "$APK_ASSETS/eval/mnist1000.vqds" ] || loud "the APK bundles NO eval set (assets/eval/mnist1000.vqds): no accuracy, no latency"

# ---------------------------------------------------------------- link, package, align, sign
say "aapt2 compile + link"
aapt2 compile --dir "$DEMO/res" -o "$BUILD/res.zip"
# -0 takes a file-name suffix with its dot: model and eval files are stored uncompressed, so the
# copy to the cache folder reads them without inflating.
aapt2 link -o "$BUILD/base.apk" -I "$FRAMEWORK_RES" --manifest "$DEMO/AndroidManifest.xml" \
    -A "$APK_ASSETS" --min-sdk-version $MIN_SDK --target-sdk-version $TARGET_SDK \
    -0 .tflite -0 .onnx -0 .vqm -0 .vqds "$BUILD/res.zip"

say "adding classes.dex and lib/"
(cd "$BUILD/apk" && zip -q -r "$BUILD/base.apk" classes.dex lib)

say "zipalign + sign.sh"
zipalign -p -f 4 "$BUILD/base.apk" "$BUILD/vqexport-demo-unsigned.apk"
rm -f "$BUILD/base.apk"
bash "$DEMO/sign.sh" "$BUILD/vqexport-demo-unsigned.apk" "$APK"
say "built $APK ($(du -k "$APK" | cut -f1) KiB, $n_models bundled model file(s))"
if ! bash "$DEMO/elf_16kb.sh" "$BUILD"/apk/lib/*/*.so >"$BUILD/elf_16kb.txt"; then
    loud "native libraries that are NOT 16 KB aligned (Play refuses them for targetSdk >= 35 on
!!! 16 KB-page devices; build with TFLITE_AAR=litert-1.4.0.aar to fix):
$(grep -v '^ok' "$BUILD/elf_16kb.txt" | sed 's/^/!!!   /')"
fi
