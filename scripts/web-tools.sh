# Sourced by scripts/setup (install_web_tools: what building the page needs) and scripts/test
# (install_test_tools: the browser the tests drive): installs pinned tools when missing and
# puts them on PATH. Versions must match: wasm-bindgen CLI = the wasm-bindgen crate (web/Cargo.toml);
# wasm-opt from npm binaryen 132 (Debian's binaryen 108 breaks wasm-bindgen output).
TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130

export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

install_web_tools() {
  if [[ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]]; then
    echo "installing trunk $TRUNK_VERSION (about 13 minutes on 2 cores)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
  if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
    echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 6 minutes)"
    # --locked fails on a webpki-roots conflict in this version's lock file.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  # wasm-opt, and for the tests and benchmarks playwright-core (a driver, no browser) and the
  # wllama anchor (package-lock.json): small, and one `npm ci` keeps the lock file the truth.
  if ! npm ls --depth=0 >/dev/null 2>&1; then
    npm ci --no-audit --no-fund
  fi
  echo "trunk $(trunk --version | cut -d' ' -f2), wasm-bindgen $(wasm-bindgen --version | cut -d' ' -f2)," \
    "$(wasm-opt --version)"
}

# What only the tests and benchmarks need: Debian's Chromium and ChromeDriver (the page build
# does not, so scripts/setup and the Pages workflow never install a browser).
install_test_tools() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium chromium-driver
  fi
  echo "$(chromium --version), $(chromedriver --version | cut -d' ' -f1-2)"
}
