# Sourced by the other scripts: where large things live, outside the repository.
export MARQUEE_CACHE="${MARQUEE_CACHE:-$HOME/.cache/marquee}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MARQUEE_CACHE/target}"
export HF_HUB_OFFLINE=1
step() { printf '\n== %s\n' "$*"; }
