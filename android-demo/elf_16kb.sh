#!/usr/bin/env bash
# Checks that shared libraries load on 16 KB-page Android devices (Play's requirement for apps
# targeting Android 15+): every LOAD segment's alignment is at least 16 KB, and each segment's
# file offset and address agree modulo that alignment (else the loader cannot map it).
#
#   bash elf_16kb.sh FILE.so...     one line per file: "ok 16K FILE" or "bad 4K FILE: why"
#
# Exit 0 when every file passes, 1 when any fails, 2 when a file is missing or not ELF.
set -uo pipefail

rc=0
for f in "$@"; do
    if [ ! -f "$f" ]; then
        echo "missing $f"
        rc=2
        continue
    fi
    if ! hdr="$(readelf -lW "$f" 2>&1)"; then
        echo "notelf $f: $(head -1 <<<"$hdr")"
        rc=2
        continue
    fi
    # LOAD  Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align  (Flg is one to three words)
    n=0; min=""; why=""
    while read -r -a w; do
        [ "${w[0]:-}" = "LOAD" ] || continue
        n=$((n + 1))
        off=$((w[1])); va=$((w[2])); al=$((w[${#w[@]} - 1]))
        if [ -z "$min" ] || [ "$al" -lt "$min" ]; then min=$al; fi
        if [ "$al" -lt 16384 ]; then
            why="$why segment $n aligned to $al;"
        elif [ $(((va - off) % al)) -ne 0 ]; then
            why="$why segment $n offset $(printf 0x%x "$off") and address $(printf 0x%x "$va") differ mod $al;"
        fi
    done <<<"$hdr"
    if [ "$n" -eq 0 ]; then
        verdict="bad ? no LOAD segments"
    else
        label=$min
        [ $((min % 1024)) -eq 0 ] && label="$((min / 1024))K"
        if [ -z "$why" ]; then verdict="ok $label"; else verdict="bad $label$why"; fi
    fi
    case "$verdict" in
        ok*) echo "${verdict%% *} ${verdict#ok } $f" ;;
        *)
            rest="${verdict#bad }"
            why="${rest#* }"
            echo "bad ${rest%% *} $f: ${why%;}"
            rc=$((rc > 1 ? rc : 1))
            ;;
    esac
done
exit "$rc"
