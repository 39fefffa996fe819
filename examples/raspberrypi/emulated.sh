#!/usr/bin/env bash
# Try the Raspberry Pi path without a Pi: a Debian bookworm arm64 root run by qemu-user as a
# Cortex-A76 (the Raspberry Pi 5's core), on an x86-64 Debian/Ubuntu machine, as root.
#   sudo bash examples/raspberrypi/emulated.sh
# It exports the demo ResNet-20 here (x86-64), installs the wheel with [runner] in the root
# exactly as setup_device.sh does on a Pi, benchmarks the same run directory in the root
# (locally, and over ssh to an sshd inside the root on 127.0.0.1), and checks that every
# file's top-1 and agreement on arm64 equal x86-64's. It writes
# benchmarks/results/emulated-pi.json. Latency under emulation is not a measurement.
#
# Settings (environment): PI_ROOT (the arm64 root, reused when already built; default
# /var/tmp/edgeresnet-pi-root), PI_WORK (wheel, run directory, keys, JSONs; default
# /var/tmp/edgeresnet-pi-work), PI_MIRROR, PI_SSH_PORT (2222), PI_THREADS (2),
# X86_VENV (the x86-64 environment with torch; default .venv, made by `make install`),
# PI_RESULT (the JSON written; default benchmarks/results/emulated-pi.json),
# PI_ALLOWED_DIFFERENCES (targets whose arm64 accuracy may differ, with a known cause;
# default none).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${PI_ROOT:-/var/tmp/edgeresnet-pi-root}
WORK=${PI_WORK:-/var/tmp/edgeresnet-pi-work}
MIRROR=${PI_MIRROR:-http://deb.debian.org/debian}
PORT=${PI_SSH_PORT:-2222}
THREADS=${PI_THREADS:-2}
X86_VENV=${X86_VENV:-$REPO/.venv}
RESULT=${PI_RESULT:-$REPO/benchmarks/results/emulated-pi.json}
ALLOWED=${PI_ALLOWED_DIFFERENCES:-}
TARGETS=tflite-int8,tflite-fp32,onnx,openvino-int8,openvino-fp32
VENV_IN_ROOT=/root/edgeresnet-runner
RUNS=(--runs 20 --warmup 2)  # few timed runs: under emulation latency means nothing
export QEMU_CPU=cortex-a76   # qemu-user's CPU model for every arm64 process: the Pi 5's core
START=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
die() { echo "emulated.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it mounts, chroots and registers binfmt_misc)"
[ "$(uname -m)" = x86_64 ] || die "this is for x86-64 hosts; on an arm64 machine use setup_device.sh directly"
case "$ROOT" in "$REPO"|"$REPO"/*) die "PI_ROOT must be outside the checkout";; esac
mkdir -p "$WORK"

# In the root: a clean environment, the Cortex-A76 model, root's HOME.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

SSHD_PID=
cleanup() {
    local rc=$?
    [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null || true
    for m in opt-bind proc sys dev; do
        case $m in
            opt-bind) for d in "${BOUND_DIRS[@]:-}"; do [ -n "$d" ] && umount -R "$ROOT$d" 2>/dev/null || true; done;;
            *) mountpoint -q "$ROOT/$m" && umount -R "$ROOT/$m" || true;;
        esac
    done
    echo "== unmounted $ROOT's /proc, /sys, /dev (exit code $rc, $(( $(date +%s) - START )) s)"
}
BOUND_DIRS=()
trap cleanup EXIT

step "1. host packages: qemu-user-static, binfmt-support, debootstrap, openssh-client"
missing=()
for p in qemu-user-static binfmt-support debootstrap openssh-client; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
echo "installed: qemu-user-static binfmt-support debootstrap openssh-client"

step "1. binfmt_misc: arm64 ELF files run through qemu-aarch64-static, flags POCF"
BINFMT=/proc/sys/fs/binfmt_misc
mountpoint -q "$BINFMT" || mount -t binfmt_misc binfmt_misc "$BINFMT"
# Debian's aarch64-binfmt-P is a link to qemu-aarch64-static (which reads QEMU_CPU); the name
# tells it that P (preserve argv[0]) is set. F opens it now, so it runs inside the chroot
# without a copy there; C takes credentials from the arm64 file (setuid works, sudo too); O
# lets it read unreadable binaries. Debian registers it without C and O: register again.
INTERP=/usr/libexec/qemu-binfmt/aarch64-binfmt-P
[ -x "$INTERP" ] || INTERP=/usr/bin/qemu-aarch64-static
if ! grep -q '^flags: POCF' "$BINFMT/qemu-aarch64" 2>/dev/null || ! grep -q '^enabled' "$BINFMT/qemu-aarch64"; then
    [ -e "$BINFMT/qemu-aarch64" ] && echo -1 > "$BINFMT/qemu-aarch64"
    echo ":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$INTERP:POCF" \
        > "$BINFMT/register"
fi
sed -n '1,3p' "$BINFMT/qemu-aarch64"

step "2. the arm64 root: Debian bookworm at $ROOT"
if [ -f "$ROOT/.edgeresnet-root-ready" ]; then
    echo "reusing it (delete $ROOT to build it again)"
else
    findmnt -rn -o TARGET | grep -q "^$ROOT/" && die "$ROOT has mounts under it: unmount them first"
    rm -rf "$ROOT"
    echo "debootstrap, second stage under qemu: a few minutes"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,openssh-server,ca-certificates \
        bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    touch "$ROOT/.edgeresnet-root-ready"
fi
in_root /usr/bin/python3 -c 'import platform; print("root:", platform.machine(), "Python", platform.python_version())'

step "3. mounts: /proc, /sys, /dev, and a Raspberry Pi 5-like /proc/cpuinfo over the root's"
# Private binds: the cpuinfo bind below must not propagate to the host's /proc.
for m in proc sys dev; do
    mountpoint -q "$ROOT/$m" || { mount --rbind "/$m" "$ROOT/$m"; mount --make-rslave "$ROOT/$m"; }
done
# The host's cpuinfo is x86's: onnxruntime and LiteRT read it to pick their ARM kernels and
# crash on it. This is what a Pi 5 shows (4 Cortex-A76 cores, r4p1), marked emulated.
CPUINFO="$WORK/cpuinfo"
{
    for i in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\n' "$i"
        printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
    done
    printf 'Model\t\t: Raspberry Pi 5 (emulated: qemu-aarch64 -cpu cortex-a76 on x86-64)\n'
} > "$CPUINFO"
mount --bind "$CPUINFO" "$ROOT/proc/cpuinfo"
# (No /proc/device-tree/model: the host's /proc has no device tree to bind over, so the
# root's host block reads board null; the board is emulated anyway.)
in_root /usr/bin/python3 -c 'print(open("/proc/cpuinfo").read().split("\n\n")[0].replace("\n", "; "))'

step "3. pip in the root: the host's pip configuration and CA certificates"
for f in /etc/pip.conf /etc/xdg/pip/pip.conf /root/.config/pip/pip.conf /etc/ssl/certs/ca-certificates.crt; do
    [ -f "$f" ] && { mkdir -p "$ROOT$(dirname "$f")"; cp "$f" "$ROOT$f"; echo "copied $f"; }
done
# Files and folders the configuration names (a cert, constraints, find-links, file:// indexes):
# files are copied, folders bound read-only at the same path.
for path in $(cat /etc/pip.conf /etc/xdg/pip/pip.conf /root/.config/pip/pip.conf 2>/dev/null \
              | sed -n 's/^[^#=]*=//p' | tr ' ' '\n' | sed -n 's#^file://##; s#^\(/[^ ]*\)#\1#p' | sort -u); do
    if [ -f "$path" ]; then
        mkdir -p "$ROOT$(dirname "$path")"; cp "$path" "$ROOT$path"; echo "copied $path"
    elif [ -d "$path" ]; then
        [ "$(basename "$path")" = simple ] && path=$(dirname "$path")  # a PEP 503 index links to ../../files
        BOUND_DIRS+=("$path")
        mountpoint -q "$ROOT$path" && continue
        mkdir -p "$ROOT$path"
        mount --bind -o ro "$path" "$ROOT$path"; mount --make-private "$ROOT$path"
        echo "bound $path (read-only)"
    fi
done

step "4. the wheel, built from this checkout into $WORK/dist"
rm -f "$WORK"/dist/edgeresnet-*.whl
if [ ! -x "$X86_VENV/bin/edgeresnet" ]; then
    echo "no $X86_VENV: make install (torch's CPU build and the exporters, once)"
    make -C "$REPO" install VENV="$X86_VENV"
fi
WHEEL=$(PYTHON="$X86_VENV/bin/python" DIST="$WORK/dist" bash "$REPO/examples/raspberrypi/build_wheel.sh" | tail -1)
echo "$WHEEL"

step "4. setup_device.sh in the root: $VENV_IN_ROOT with edgeresnet[runner] (pip under emulation: minutes)"
cp "$WHEEL" "$REPO/examples/raspberrypi/setup_device.sh" "$ROOT/root/"
in_root env VENV="$VENV_IN_ROOT" bash /root/setup_device.sh "/root/$(basename "$WHEEL")" 2>&1 | grep -v -E '^(Requirement already|  Downloading|  Using cached|Collecting|Looking in)|━|is ignored: it is neither' || die "setup_device.sh failed in the root"
VENV_MB=$(du -sm "$ROOT$VENV_IN_ROOT" | cut -f1)
echo "runner environment: $VENV_MB MB"

step "5. x86-64: export the demo ResNet-20 ($TARGETS) and benchmark it here"
"$X86_VENV/bin/edgeresnet" compress --target "$TARGETS" --out "$WORK/run" --overwrite
"$X86_VENV/bin/edgeresnet" bench "$WORK/run" --data samples --threads "$THREADS" "${RUNS[@]}" --json-out "$WORK/bench-x86.json"

step "6. arm64, in the root: edgeresnet bench of the same run directory"
rm -rf "$ROOT/root/run" && cp -a "$WORK/run" "$ROOT/root/run"
rc=0
in_root "$VENV_IN_ROOT/bin/edgeresnet" bench /root/run --data samples --threads "$THREADS" "${RUNS[@]}" \
    --json-out /root/bench-arm64.json || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "bench in the root failed (exit code $rc)"
cp "$ROOT/root/bench-arm64.json" "$WORK/bench-arm64.json"

step "6. arm64 over ssh: sshd in the root on 127.0.0.1:$PORT, bench --ssh from here"
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is taken: set PI_SSH_PORT"
KEYS="$WORK/ssh"
rm -rf "$KEYS" && mkdir -p "$KEYS" && chmod 700 "$KEYS"
ssh-keygen -q -t ed25519 -N '' -f "$KEYS/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$KEYS/client_key"
mkdir -p "$ROOT/etc/ssh/edgeresnet" "$ROOT/run/sshd"
cp "$KEYS/host_key" "$ROOT/etc/ssh/edgeresnet/host_key"
cp "$KEYS/client_key.pub" "$ROOT/etc/ssh/edgeresnet/authorized_keys"
# SetEnv: sshd gives sessions a fresh environment, and qemu reads QEMU_CPU from it.
cat > "$ROOT/etc/ssh/edgeresnet/sshd_config" <<EOF
ListenAddress 127.0.0.1:$PORT
HostKey /etc/ssh/edgeresnet/host_key
PidFile none
AuthorizedKeysFile /etc/ssh/edgeresnet/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv QEMU_CPU=$QEMU_CPU
EOF
cat > "$KEYS/config" <<EOF
Host 127.0.0.1
  Port $PORT
  IdentityFile $KEYS/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $KEYS/known_hosts
  LogLevel ERROR
EOF
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$KEYS/host_key.pub")" > "$KEYS/known_hosts"
# exec: $! is then sshd itself (chroot and env exec too), which the exit trap stops.
(exec chroot "$ROOT" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /usr/sbin/sshd -D -e -f /etc/ssh/edgeresnet/sshd_config) 2> "$WORK/sshd.log" &
SSHD_PID=$!
for _ in $(seq 60); do
    ssh -F "$KEYS/config" -o BatchMode=yes root@127.0.0.1 true 2>/dev/null && break
    kill -0 "$SSHD_PID" 2>/dev/null || { cat "$WORK/sshd.log"; die "sshd in the root did not start"; }
    sleep 1
done
ssh -F "$KEYS/config" -o BatchMode=yes root@127.0.0.1 'uname -m; grep -m1 "CPU part" /proc/cpuinfo'
rc=0
"$X86_VENV/bin/edgeresnet" bench "$WORK/run" --ssh root@127.0.0.1 --ssh-config "$KEYS/config" \
    --remote-python "$VENV_IN_ROOT/bin/python" --data samples --threads "$THREADS" "${RUNS[@]}" \
    --json-out "$WORK/bench-arm64-ssh.json" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "bench over ssh failed (exit code $rc)"

step "7. compare: every file's top-1 and agreement, arm64 (root and ssh) against x86-64"
mkdir -p "$(dirname "$RESULT")"
"$X86_VENV/bin/python" - "$WORK" "$ROOT$VENV_IN_ROOT" "$VENV_MB" "$RESULT" "$ALLOWED" "$QEMU_CPU" <<'EOF'
import datetime, glob, json, re, subprocess, sys
from pathlib import Path

work, venv, venv_mb, result, allowed, qemu_cpu = sys.argv[1:]
work = Path(work)
allowed = dict(item.split("=", 1) if "=" in item else (item, "")
               for item in allowed.split(",") if item)
runs = {name: json.loads((work / f"bench-{name}.json").read_text()) for name in ("x86", "arm64", "arm64-ssh")}

def rows(bench):
    return {r["target"]: r for r in bench["results"]}

def accuracy(row):
    acc = row.get("accuracy") or {}
    return {"status": row["status"], "runtime_version": row.get("runtime_version"),
            "top1": acc.get("top1"), "agreement": acc.get("agreement"), "note": row.get("note")}

x86, arm, ssh = (rows(runs[n]) for n in ("x86", "arm64", "arm64-ssh"))
targets, failures = {}, []
for target in x86:
    a, b, c = accuracy(x86[target]), accuracy(arm.get(target, {"status": "missing"})), \
        accuracy(ssh.get(target, {"status": "missing"}))
    equal = {key: a[key] is not None and a[key] == b[key] == c[key] for key in ("top1", "agreement")}
    ok = all(x["status"] == "ok" for x in (a, b, c)) and all(equal.values())
    entry = {"x86_64": a, "arm64": b, "arm64_ssh": c, "top1_equal": equal["top1"],
             "agreement_equal": equal["agreement"]}
    if not ok and target in allowed:
        entry["known_difference"] = allowed[target] or "listed in PI_ALLOWED_DIFFERENCES"
    elif not ok:
        failures.append(target)
    targets[target] = entry

# The glibc each binary wheel in the runner environment needs: its manylinux tag.
floors = {}
for wheel_file in sorted(glob.glob(f"{venv}/lib/python3*/site-packages/*.dist-info/WHEEL")):
    tags = [line.split(":", 1)[1].strip() for line in Path(wheel_file).read_text().splitlines() if line.startswith("Tag:")]
    platforms = [t.split("-")[-1] for t in tags if "linux" in t]
    if not platforms:
        continue
    dist = Path(wheel_file).parent.name.removesuffix(".dist-info")
    versions = []
    for p in platforms:
        m = re.match(r"manylinux_(\d+)_(\d+)_", p) or (re.match(r"manylinux2014_", p) and ("2", "17"))
        m = m.groups() if hasattr(m, "groups") else m
        if m:
            versions.append((int(m[0]), int(m[1])))
    floors[dist] = {"tags": platforms, "glibc": ".".join(map(str, min(versions))) if versions else None}

arm_host = runs["arm64"]["host"]
doc = {
    "kind": "edgeresnet-emulated-pi",
    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "what": "examples/raspberrypi/emulated.sh: the demo ResNet-20 exported on x86-64, benchmarked on x86-64 and "
            "in a Debian bookworm arm64 root under qemu-user (QEMU_CPU=%s, the Raspberry Pi 5's core), locally "
            "and over ssh; top-1 and agreement must be equal" % qemu_cpu,
    "latency": "emulated: not a measurement (latency, throughput and memory fields are left out)",
    "data": {k: v for k, v in runs["x86"]["data"].items() if k != "source"} | {"name": "samples"},
    "emulation": {
        "qemu": subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        "qemu_cpu": qemu_cpu,
        "cpuinfo": "a Raspberry Pi 5-like /proc/cpuinfo (4 Cortex-A76 r4p1) bound over the root's; cores is the "
                   "host's count (os.cpu_count); board is null: no device tree under emulation",
    },
    "host_x86_64": runs["x86"]["host"],
    "host_arm64": arm_host,
    "host_arm64_ssh": runs["arm64-ssh"]["host"],
    "runner_venv_mb": int(venv_mb),
    "wheel_glibc_floor": floors,
    "targets": targets,
    "all_equal": not failures and all(t["top1_equal"] and t["agreement_equal"] for t in targets.values()),
}
Path(result).write_text(json.dumps(doc, indent=2) + "\n")

assert arm_host["machine"] == "aarch64", arm_host
assert arm_host["cpu"] == "Arm Cortex-A76", arm_host
fmt = lambda v: "-" if v is None else f"{v:.2f}%"
print(f"{'target':<15}{'x86 top-1':>11}{'arm64':>9}{'ssh':>9}{'x86 agree':>11}{'arm64':>9}{'ssh':>9}  equal")
for target, t in targets.items():
    same = "yes" if t["top1_equal"] and t["agreement_equal"] else ("known: " + t["known_difference"][:40]
                                                                  if "known_difference" in t else "NO")
    print(f"{target:<15}" + "".join(f"{fmt(t[k]['top1']):>{w}}" for k, w in (("x86_64", 11), ("arm64", 9), ("arm64_ssh", 9)))
          + "".join(f"{fmt(t[k]['agreement']):>{w}}" for k, w in (("x86_64", 11), ("arm64", 9), ("arm64_ssh", 9)))
          + f"  {same}")
print(f"arm64 host: {arm_host['cpu']}, {arm_host['machine']}, {arm_host['os']}, Python {arm_host['python']}; "
      f"runner environment {venv_mb} MB")
print("glibc floors: " + ", ".join(f"{d} {f['glibc']}" for d, f in floors.items()))
print(f"wrote {result}")
if failures:
    sys.exit(f"arm64 differs from x86-64 on: {', '.join(failures)}")
EOF
echo "done in $(( $(date +%s) - START )) s"
