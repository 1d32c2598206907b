#!/usr/bin/env bash
# Regenerates the copied seed inputs under fuzz/seeds/ from the repository's
# own manifests: examples/manifests, deploy/compose/manifests and every
# tests/fixtures/*/input. Generated seeds are named gen-*; hand-made ones
# (hand-*) and crash regressions (regress-*) are left alone.
#
#   manifest_parse: each YAML file as it is, plus each hand-* seed.
#   pipeline_build: the target's format (see fuzz_targets/pipeline_build.rs):
#     files separated by NUL, each led by one byte choosing its path
#     ('0' = m<i>.yaml, '1'..'5' = cfg/<gateways|virtualservices|routetables|
#     upstreams|upstreamgroups>/gloo-system/x<i>.yaml). One seed per file and
#     one per manifest directory of several files with all of them (a complete config, so
#     the seed reaches translation), plus each manifest_parse hand-* seed
#     as a single m0.yaml file.
set -euo pipefail

fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$fuzz/.." && pwd)"
parse="$fuzz/seeds/manifest_parse"
pipe="$fuzz/seeds/pipeline_build"
mkdir -p "$parse" "$pipe"
rm -f "$parse"/gen-* "$pipe"/gen-*

# The selector byte for a file: Gloo's flat layout when its grandparent
# directory names a kind, else '0' (kind written in the document).
selector() {
  case "$(basename "$(dirname "$(dirname "$1")")")" in
    gateways) printf 1 ;;
    virtualservices) printf 2 ;;
    routetables) printf 3 ;;
    upstreams) printf 4 ;;
    upstreamgroups) printf 5 ;;
    *) printf 0 ;;
  esac
}

# A seed name from a path relative to the root: slashes become '__'.
name_of() {
  local rel="${1#"$root"/}"
  printf '%s' "${rel//\//__}"
}

cd "$root"
dirs=(examples/manifests deploy/compose/manifests)
for d in tests/fixtures/*/input; do
  dirs+=("$d")
done

for d in "${dirs[@]}"; do
  mapfile -t files < <(find "$d" -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
  for f in "${files[@]}"; do
    n="$(name_of "$f")"
    cp "$f" "$parse/gen-$n"
    { selector "$f"; cat "$f"; } >"$pipe/gen-$n"
  done
  # A directory of several files: all of them as one input.
  if [ "${#files[@]}" -gt 1 ]; then
    all="$pipe/gen-$(name_of "$d").all"
    : >"$all"
    for i in "${!files[@]}"; do
      if [ "$i" -gt 0 ]; then printf '\0' >>"$all"; fi
      { selector "${files[$i]}"; cat "${files[$i]}"; } >>"$all"
    done
  fi
done

for f in "$parse"/hand-*; do
  [ -e "$f" ] || continue
  { printf 0; cat "$f"; } >"$pipe/gen-$(basename "$f")"
done

echo "manifest_parse: $(find "$parse" -type f | wc -l) seeds; pipeline_build: $(find "$pipe" -type f | wc -l) seeds"
