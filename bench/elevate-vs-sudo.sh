#!/usr/bin/env bash
# Benchmark: `elevate true` (pre-approved by an auto rule) against `sudo -n true` (NOPASSWD rule),
# same machine, same user, one hyperfine run; plus the agent's idle memory. Run as root:
#   bench/elevate-vs-sudo.sh
# It works in a private mount namespace over a copy of /etc, so the machine is left unchanged.
# ELEVATE_BENCH_BASELINE=DIR (a folder with `elevated` and `elevate` from another build, e.g. the
# previous commit) adds that build, with its own agent, to the same hyperfine run;
# ELEVATE_BENCH_ROUNDS=N then also compares the two in N rounds of alternating order.
# Needs: hyperfine, sudo (apt-get install hyperfine sudo).
set -euo pipefail
if [ -z "${ELEVATE_BENCH_NS:-}" ]; then
  exec unshare --mount --propagation private env ELEVATE_BENCH_NS=1 "$0" "$@"
fi
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v sudo >/dev/null || { echo "install hyperfine and sudo first" >&2; exit 2; }
cargo build --release -q -p elevate-server -p elevate-agent -p elevate-cli -p elevate-sudo-plugin
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

work=$(mktemp -d /tmp/elevate-bench-XXXXXX); chmod 755 "$work"
cleanup() { kill "${agent:-}" "${base_agent:-}" "${server:-}" 2>/dev/null || true; umount /etc 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cp -a /etc "$work/etc"; mount --bind "$work/etc" /etc
useradd -M benchuser
echo 'benchuser ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/elevate-bench; chmod 440 /etc/sudoers.d/elevate-bench
cp "$bin/elevate" "$work/elevate"; mkdir -m 777 "$work/out"

port=18080
password=bench-password-0123
echo "$password" | "$bin/elevate-server" --data-dir "$work/server" account add admin --roles admin,approver,auditor --groups helpdesk
ELEVATE_LOG=warn "$bin/elevate-server" --data-dir "$work/server" --listen "127.0.0.1:$port" serve & server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export XDG_CONFIG_HOME="$work/ctl"
echo "$password" | "$bin/elevatectl" --server "http://127.0.0.1:$port" login --account admin --password-stdin >/dev/null
cat > "$work/policy.toml" <<'POLICY'
version = 1
[defaults]
unmatched = "approve"
approvers = "helpdesk"

[[rule]]
name = "benchmark"
who = { users = ["benchuser"] }
what = { paths = ["/usr/bin/true"] }
action = "auto"
POLICY
"$bin/elevatectl" policy apply "$work/policy.toml" >/dev/null
token=$("$bin/elevatectl" enrol-token create 2>/dev/null)
echo "$token" | "$bin/elevated" --state-dir "$work/agent" enrol --server "http://127.0.0.1:$port" --token - --name bench >/dev/null
ELEVATE_LOG="${ELEVATE_AGENT_LOG:-warn}" "$bin/elevated" --state-dir "$work/agent" run --socket "$work/run/agent.sock" 2> "$work/agent.log" & agent=$!
for _ in $(seq 100); do ELEVATE_SOCKET="$work/run/agent.sock" "$bin/elevate" status 2>/dev/null | grep -q 'policy:  version' && break; sleep 0.1; done
compare=()
if [ -n "${ELEVATE_BENCH_BASELINE:-}" ]; then
  base="$ELEVATE_BENCH_BASELINE"
  token=$("$bin/elevatectl" enrol-token create 2>/dev/null)
  echo "$token" | "$base/elevated" --state-dir "$work/base-agent" enrol --server "http://127.0.0.1:$port" --token - --name bench-baseline >/dev/null
  ELEVATE_LOG=warn "$base/elevated" --state-dir "$work/base-agent" run --socket "$work/base-run/agent.sock" 2> "$work/base-agent.log" & base_agent=$!
  for _ in $(seq 100); do ELEVATE_SOCKET="$work/base-run/agent.sock" "$base/elevate" status 2>/dev/null | grep -q 'policy:  version' && break; sleep 0.1; done
  mkdir -p "$work/baseline"; cp "$base/elevate" "$work/baseline/elevate"
  compare=("$work/baseline/elevate --socket $work/base-run/agent.sock true")
fi

as_user() { setpriv --reuid=benchuser --regid=benchuser --init-groups -- env -i PATH=/usr/bin:/bin ELEVATE_SOCKET="$work/run/agent.sock" "$@"; }
as_user "$work/elevate" true
as_user sudo -n true
if [ -n "${ELEVATE_BENCH_STRACE:-}" ]; then
  strace -f -tt -T -p "$agent" -o "$work/strace.txt" & tracer=$!; sleep 0.5
  as_user "$work/elevate" true; as_user "$work/elevate" true
  sleep 0.3; kill "$tracer"; sleep 0.2; cp "$work/strace.txt" /tmp/elevate-agent-strace.txt
fi
sleep 1
echo "agent RSS after start and one request: $(grep VmRSS /proc/$agent/status)"
as_user hyperfine -N --warmup 30 --runs 500 \
  --export-json "$work/out/hyperfine.json" \
  "sudo -n true" "$work/elevate true" "${compare[@]}" 2>&1 | sed "s|$work/||g"
# Medians too: a few slow outliers (disk flushes, the other core busy) move the mean a lot.
python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("median %6.2f ms  %s" % (r["median"]*1000, r["command"].replace(sys.argv[2]+"/","")))' "$work/out/hyperfine.json" "$work"
if [ -n "${ELEVATE_BENCH_BASELINE:-}" ] && [ "${ELEVATE_BENCH_ROUNDS:-0}" -gt 0 ]; then
  # Against the baseline, in alternating order, round after round: one long run of each in
  # turn lets the machine's drift (the other core busy, a flush) land on one side only.
  for round in $(seq "$ELEVATE_BENCH_ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then pair=("$work/elevate true" "${compare[@]}"); else pair=("${compare[@]}" "$work/elevate true"); fi
    as_user hyperfine -N --warmup 20 --runs 300 --export-json "$work/out/round-$round.json" "${pair[@]}" >/dev/null 2>&1
  done
  python3 -c 'import json,sys,statistics
work, rounds = sys.argv[1], int(sys.argv[2])
ratios = []
for n in range(1, rounds + 1):
    r = {x["command"]: x["median"] for x in json.load(open("%s/out/round-%d.json" % (work, n)))["results"]}
    current = r[work + "/elevate true"]
    base = [v for k, v in r.items() if k != work + "/elevate true"][0]
    ratios.append(current / base)
    print("round %2d  median %5.2f ms current, %5.2f ms baseline, ratio %.3f" % (n, current * 1000, base * 1000, current / base))
print("median ratio current/baseline over %d rounds: %.3f" % (rounds, statistics.median(ratios)))' "$work" "$ELEVATE_BENCH_ROUNDS"
fi
if [ -n "${ELEVATE_BENCH_DETAIL:-}" ]; then
  # Where the time goes: process start of the client alone, and a round trip without running.
  as_user hyperfine -N --warmup 30 --runs 300 --export-json "$work/out/detail.json" \
    "/usr/bin/true" "$work/elevate --version" "$work/elevate status" >/dev/null 2>&1
  python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("median %6.2f ms  %s" % (r["median"]*1000, r["command"].replace(sys.argv[2]+"/","")))' "$work/out/detail.json" "$work"
  # The client's side of one run, with times.
  as_user strace -r -o "$work/out/client-strace.txt" "$work/elevate" true
  cp "$work/out/client-strace.txt" /tmp/elevate-client-strace.txt
fi
# sudo with the Elevate approval plugin against stock sudo (target: within 15 %). sudo.conf is
# switched before each run (as root), so every command goes through setpriv; its own cost is
# measured beside them.
[ -f /etc/sudo.conf ] && cp /etc/sudo.conf "$work/sudo.conf.stock" || : > "$work/sudo.conf.stock"
{ cat "$work/sudo.conf.stock"
  echo "Plugin elevate_audit $bin/libelevate_sudo.so socket=$work/run/agent.sock"
  echo "Plugin elevate_approval $bin/libelevate_sudo.so socket=$work/run/agent.sock"; } > "$work/sudo.conf.elevate"
as_bench="setpriv --reuid=benchuser --regid=benchuser --init-groups --"
hyperfine -N --warmup 30 --runs 300 --export-json "$work/out/sudo.json" \
  --prepare "cp $work/sudo.conf.stock /etc/sudo.conf" -n "stock sudo -n true" "$as_bench sudo -n true" \
  --prepare "cp $work/sudo.conf.elevate /etc/sudo.conf" -n "sudo -n true + elevate plugin" "$as_bench sudo -n true" \
  --prepare "true" -n "setpriv alone" "$as_bench true" >/dev/null 2>&1
python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("median %6.2f ms  mean %6.2f ms  %s" % (r["median"]*1000, r["mean"]*1000, r["command"]))' "$work/out/sudo.json"
cp "$work/sudo.conf.stock" /etc/sudo.conf
sleep 3
echo "agent RSS idle after 530 requests: $(grep VmRSS /proc/$agent/status)"
[ -z "${ELEVATE_AGENT_LOG:-}" ] || tail -n 12 "$work/agent.log"
if [ -n "${ELEVATE_BENCH_SMAPS:-}" ]; then
  # Where the agent's resident memory is, largest mappings first.
  awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{rss[name]+=$2} END{for (n in rss) printf "%8d kB  %s\n", rss[n], (n==""?"[anon]":n)}' "/proc/$agent/smaps" | sort -rn | head -8
fi
