#!/usr/bin/env bash
# Throughput and latency benchmark: the same closed-loop load, on loopback,
# straight to a static origin and through each proxy, every proxy with one
# worker thread or process.
#
#   load-tests/bench.sh           full run (about 5.5 minutes once built): 3 rounds of 8 s
#                                 per contender and tool; report in load-tests/results/DATE/bench.md
#   load-tests/bench.sh --quick   smoke run (under a minute once built): 1 round of 2 s
#
# Options (they take precedence over --quick's values):
#   --duration S      measured seconds per run (default 8; --quick: 2)
#   --warmup S        warm-up seconds before each contender's runs (default 1)
#   --connections C   concurrent connections, the same for every contender and tool (default 32)
#   --rounds N        rounds; each runs every contender once, in rotated order (default 3; --quick: 1)
#   --out DIR         where bench.md goes (default load-tests/results/DATE)
#   --profile NAME    cargo profile of every Rust contender (default production:
#                     fat LTO, one codegen unit, as shipped; release builds faster)
#   --contenders LIST only these contenders, by name, comma-separated (for example
#                     "ballast latency,ballast latency logged"); default: all of them
#   --reference NAME  the contender the paired table compares every other one with,
#                     round by round (default "ballast latency", else the first one).
#                     Many short rounds of few contenders (--rounds 15 --duration 3)
#                     make the paired ratios robust to a machine whose speed drifts
#   --upstream-tls    the origin serves HTTPS (a development CA from `ballast gen-cert`)
#                     and every proxy verifies it: Ballast with a pool `tls`, nginx with
#                     `proxy_ssl_verify on`, HAProxy with `ssl verify required`; the
#                     report is bench-upstream-tls.md. Needs nginx. The direct and bare
#                     Pingora contenders are left out (the load tools and the bare proxy
#                     speak plain HTTP).
#
# The origin is nginx (`worker_processes 1`, access log off) returning a
# small fixed body with a `Server-Load` header. Contenders: the origin
# directly; Ballast in latency mode (its default), without and with its
# access log, and with an event budget shared through Redis (when
# redis-server is installed; it is started on loopback); Ballast in
# round_robin mode with one attempt per request; a
# bare Pingora proxy, with the system allocator (ballast-bare-pingora) and
# with Ballast's allocator, mimalloc (ballast-bare-pingora-mimalloc); nginx
# as a proxy; HAProxy. The load tools are wrk
# and oha; either is skipped when missing, and so are the nginx and HAProxy
# contenders. NGINX, HAPROXY, WRK, OHA and REDIS_SERVER name other
# executables (set to nothing, they skip theirs). Figures are medians across rounds; the report
# also lists every run, the machine, the versions and the exact commands
# and configurations.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=load-tests/prereqs.sh disable=SC1091
. load-tests/prereqs.sh

duration="" warmup="" connections="" rounds="" out="" profile="production"
quick=false upstream_tls=false contender_list="" reference=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --duration) duration="${2:?--duration needs a value}"; shift ;;
    --warmup) warmup="${2:?--warmup needs a value}"; shift ;;
    --connections) connections="${2:?--connections needs a value}"; shift ;;
    --rounds) rounds="${2:?--rounds needs a value}"; shift ;;
    --out) out="${2:?--out needs a value}"; shift ;;
    --profile) profile="${2:?--profile needs a value}"; shift ;;
    --upstream-tls) upstream_tls=true ;;
    --contenders) contender_list="${2:?--contenders needs a value}"; shift ;;
    --reference) reference="${2:?--reference needs a value}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if $quick; then
  duration="${duration:-2}" rounds="${rounds:-1}"
fi
duration="${duration:-8}" warmup="${warmup:-1}" connections="${connections:-32}" rounds="${rounds:-3}"
out="${out:-load-tests/results/$(date +%F)}"
for value in "$duration" "$warmup" "$connections" "$rounds"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "error: \"$value\" is not a positive integer" >&2; exit 2; }
done

all_contenders=("direct" "ballast latency" "ballast latency logged" "ballast latency fleet budget"
  "ballast round_robin" "bare pingora" "bare pingora mimalloc" "nginx" "haproxy")
selected=()
if [ -n "$contender_list" ]; then
  IFS=, read -ra selected <<<"$contender_list"
  for name in "${selected[@]}"; do
    known=false
    for candidate in "${all_contenders[@]}"; do [ "$name" != "$candidate" ] || known=true; done
    $known || { echo "error: --contenders: no contender \"$name\" (there are: $(IFS=,; echo "${all_contenders[*]}"))" >&2; exit 2; }
  done
fi
wanted() { # NAME: whether that contender is to run
  local name
  [ ${#selected[@]} -gt 0 ] || return 0
  for name in "${selected[@]}"; do [ "$name" != "$1" ] || return 0; done
  return 1
}

# ---------------------------------------------------------------- tools

find_tool() { # NAME: print its path, or nothing
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } ||
    { [ -x "$HOME/.cargo/bin/$1" ] && echo "$HOME/.cargo/bin/$1"; } || true
}
nginx_bin="${NGINX-$(find_tool nginx)}"
haproxy_bin="${HAPROXY-$(find_tool haproxy)}"
wrk_bin="${WRK-$(find_tool wrk)}"
oha_bin="${OHA-$(find_tool oha)}"
skipped=()
if $upstream_tls && [ -z "$nginx_bin" ]; then
  echo "error: --upstream-tls needs nginx for the HTTPS origin" >&2
  exit 1
fi
[ -n "$nginx_bin" ] || skipped+=("nginx is not installed: no nginx contender, and the origin is ballast-origin instead (install nginx for comparable figures)")
[ -n "$haproxy_bin" ] || skipped+=("HAProxy is not installed: no HAProxy contender")
[ -n "$wrk_bin" ] || skipped+=("wrk is not installed (apt-get install wrk): no wrk runs")
[ -n "$oha_bin" ] || skipped+=("oha is not installed (cargo install oha --locked): no oha runs")
for message in "${skipped[@]}"; do echo "note: $message" >&2; done
[ -n "$wrk_bin$oha_bin" ] || { echo "error: neither wrk nor oha is installed" >&2; exit 1; }
tools=()
[ -z "$wrk_bin" ] || tools+=(wrk)
[ -z "$oha_bin" ] || tools+=(oha)
command -v setsid >/dev/null || { echo "error: setsid (util-linux) is required" >&2; exit 1; }

echo "building (profile $profile)..."
cargo build --profile "$profile" --locked -p ballast -p ballast-load-tests \
  --bin ballast --bin ballast-bare-pingora --bin ballast-bare-pingora-mimalloc --bin ballast-origin
bin="$CARGO_TARGET_DIR/$profile"
[ "$profile" != dev ] || bin="$CARGO_TARGET_DIR/debug"

# ------------------------------------------------- processes and cleanup

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ballast-bench.XXXXXX")"
pids=() # every process started: each leads its own session and process group
tool_pid="" # the load tool running now, if any

alive() { # PID: whether it runs (an exited child stays a zombie until waited for)
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ "$state" != Z* ]]
}

cleanup() {
  trap - EXIT INT TERM
  local pid waited=0
  if [ -n "$tool_pid" ]; then
    kill -TERM "$tool_pid" 2>/dev/null || true
    wait "$tool_pid" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    while alive "$pid" && [ "$waited" -lt 50 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: run COMMAND in a new session, output in $tmp/NAME.log;
# sets $started to its pid (which is also its process group and session id).
start() {
  local name="$1"
  shift
  setsid "$@" >"$tmp/${name// /-}.log" 2>&1 &
  started=$!
  pids+=("$started")
}


# wait_ready NAME [CURL_ARGS...] URL PID: poll URL until it answers 200 (at most 15 s).
wait_ready() {
  local name="$1" pid="${*: -1}" try
  local curl_args=("${@:2:$#-2}")
  local url="${curl_args[-1]}"
  for try in $(seq 150); do
    if ! alive "$pid"; then
      echo "error: $name exited during startup; its log:" >&2
      tail -n 20 "$tmp/${name// /-}.log" >&2
      exit 1
    fi
    if [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "${curl_args[@]}" || true)" = 200 ]; then
      return 0
    fi
    [ "$try" -lt 150 ] && sleep 0.1
  done
  echo "error: $name did not answer 200 on $url within 15 s; its log:" >&2
  tail -n 20 "$tmp/${name// /-}.log" >&2
  exit 1
}

clock_ticks="$(getconf CLK_TCK)"
cpu_ticks() { # SESSION: user + system clock ticks of every process in it
  local sid="$1" total=0 pid stat
  local -a fields
  for pid in $(pgrep -s "$sid" || true); do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# ---------------------------------------------------------------- origin

body="ballast benchmark origin: a small fixed response body, the same for every request."
server_load="util=0.40, inflight=2"
origin_port="" nginx_port="" haproxy_port="" # set by free_port
free_port origin_port
origin_url="http://127.0.0.1:$origin_port/"
# With --upstream-tls: the origin's certificate, for this name, from a development CA.
origin_name="origin.bench.test"
origin_check=("$origin_url") # how curl asks the origin itself
if $upstream_tls; then
  origin_url="https://127.0.0.1:$origin_port/"
  "$bin/ballast" gen-cert --out "$tmp/certs" --stem origin --name "$origin_name" >/dev/null
  origin_check=(--cacert "$tmp/certs/ca.crt" --resolve "$origin_name:$origin_port:127.0.0.1"
    "https://$origin_name:$origin_port/")
fi

# nginx_prelude DIR: the settings every nginx here shares (files inside DIR,
# one worker, no access log, long-lived keep-alive connections).
nginx_prelude() {
  local dir="$1"
  cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 4096;
}
EOF
}
nginx_paths() {
  local dir="$1"
  cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

if [ -n "$nginx_bin" ]; then
  mkdir -p "$tmp/origin"
  {
    nginx_prelude "$tmp/origin"
    echo "http {"
    nginx_paths "$tmp/origin"
    cat <<EOF
    server {
$(if $upstream_tls; then
  echo "        listen 127.0.0.1:$origin_port ssl;"
  echo "        ssl_certificate $tmp/certs/origin.crt;"
  echo "        ssl_certificate_key $tmp/certs/origin.key;"
else
  echo "        listen 127.0.0.1:$origin_port;"
fi)
        location / {
            default_type text/plain;
            add_header Server-Load "$server_load";
            return 200 "$body\n";
        }
    }
}
EOF
  } >"$tmp/origin/nginx.conf"
  origin_cmd=("$nginx_bin" -p "$tmp/origin" -e "$tmp/origin/error.log" -c "$tmp/origin/nginx.conf")
  origin_desc="nginx, \`worker_processes 1\`, access log off, \`return 200\` of a $((${#body} + 1))-byte body with \`Server-Load: $server_load\`"
  ! $upstream_tls || origin_desc="$origin_desc, over HTTPS (TLS 1.3 by default) with a certificate for $origin_name from a development CA (\`ballast gen-cert\`)"
else
  origin_cmd=("$bin/ballast-origin" --origin "origin@127.0.0.1:$origin_port")
  origin_desc="ballast-origin (nginx is not installed; these figures are not comparable with an nginx origin)"
fi
start origin "${origin_cmd[@]}"
origin_pid=$started
wait_ready origin "${origin_check[@]}" "$origin_pid"

# ------------------------------------------------------------ contenders

names=() urls=() sessions=() commands=() configs=() descriptions=()
# add_contender NAME URL SESSION COMMAND CONFIG_FILE DESCRIPTION
add_contender() {
  names+=("$1") urls+=("$2") sessions+=("$3") commands+=("$4") configs+=("$5") descriptions+=("$6")
}
quote() { local out="" arg; for arg in "$@"; do out+="$(printf '%q' "$arg") "; done; echo "${out% }"; }

if $upstream_tls; then
  skipped+=("--upstream-tls: no direct and no bare Pingora contenders (the load tools and the bare proxy speak plain HTTP)")
elif wanted direct; then
  add_contender "direct" "$origin_url" "" "$(quote "${origin_cmd[@]}")" \
    "$([ -n "$nginx_bin" ] && echo "$tmp/origin/nginx.conf")" \
    "no proxy: the load tool talks to the origin itself (the ceiling)"
fi
# The pool settings, nginx and HAProxy server options that verify the origin.
ballast_tls="" nginx_tls="" haproxy_tls="" upstream_scheme=http
if $upstream_tls; then
  ballast_tls="    tls: {sni: $origin_name, ca: \"$tmp/certs/ca.crt\"}
"
  upstream_scheme=https
  nginx_tls="
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $tmp/certs/ca.crt;
            proxy_ssl_name $origin_name;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;"
  haproxy_tls=" ssl verify required ca-file $tmp/certs/ca.crt sni str($origin_name) verifyhost $origin_name"
fi

# ballast_contender NAME MODE EXTRA_POOL_YAML DESCRIPTION [LOG_LEVEL] [ROUTE_BUDGET] [TOP_YAML]
ballast_contender() {
  local name="$1" mode="$2" extra="$3" description="$4" log_level="${5:-warn}"
  local budget="${6:-}" top="${7:-}" port admin_port file
  wanted "$name" || return 0
  free_port port
  free_port admin_port
  file="$tmp/${name// /-}.yaml"
  cat >"$file" <<EOF
listeners:
  - address: "127.0.0.1:$port"
admin:
  address: "127.0.0.1:$admin_port"
server:
  threads: 1
  drain_timeout: 1s
  upgrade_sock: "$tmp/${name// /-}-upgrade.sock"
pools:
  origin:
    mode: $mode
${extra}    backends:
      - addr: "127.0.0.1:$origin_port"${budget:+
        capacity: 1000000}
routes:
  - name: all
    match: {}
    pool: origin${budget:+
    budget: $budget}
${top}
EOF
  "$bin/ballast" check -c "$file" >/dev/null
  local cmd=("$bin/ballast" --log-level "$log_level" run -c "$file")
  start "$name" "${cmd[@]}"
  wait_ready "$name" "http://127.0.0.1:$port/" "$started"
  add_contender "$name" "http://127.0.0.1:$port/" "$started" "$(quote "${cmd[@]}")" "$file" "$description"
}

ballast_contender "ballast latency" latency "$ballast_tls" \
  "Ballast's default adaptive mode (\`latency\`): weight engine, live statistics, Prometheus metrics, \`Server-Load\` parsed and stripped, X-Forwarded-*/X-Request-Id headers; access log off (\`--log-level warn\`)"
ballast_contender "ballast latency logged" latency "$ballast_tls" \
  "The same, with the default access log on (\`--log-level info\`: one line per request, text, to a file through the buffered background writer)" info
# The same route with an event budget shared through Redis (far above the
# load, so nothing is refused): what leasing tokens adds per request.
redis_bin="${REDIS_SERVER-$(find_tool redis-server)}"
if ! wanted "ballast latency fleet budget"; then
  :
elif [ -n "$redis_bin" ] && ! $upstream_tls; then
  redis_port=""
  free_port redis_port
  start redis "$redis_bin" --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no
  for _ in $(seq 100); do
    [ "$( (exec 3<>"/dev/tcp/127.0.0.1/$redis_port" && printf 'PING\r\n' >&3 && head -c 5 <&3) 2>/dev/null)" = "+PONG" ] && break
    sleep 0.1
  done
  ballast_contender "ballast latency fleet budget" latency "" \
    "The \`ballast latency\` configuration with an event budget on its route (\`region_share: 1.0\` of a capacity of 1 000 000 req/s, never reached) shared by the fleet through Redis (\`fleet.budget_store\`, a local redis-server, leases every 100 ms): every request takes a leased token; access log off" \
    warn "{region_share: 1.0}" "fleet: {budget_store: \"redis://127.0.0.1:$redis_port\"}"
else
  skipped+=("redis-server is not installed (or --upstream-tls): no fleet-budget contender")
fi
ballast_contender "ballast round_robin" round_robin "$ballast_tls    retries: {attempts: 1}
" "Ballast with everything optional off: \`round_robin\`, one attempt per request, no health checks, no explanations; metrics and the header handling are always on; access log off"

# bare_contender NAME BINARY DESCRIPTION
bare_contender() {
  local name="$1" binary="$2" description="$3" port
  wanted "$name" || return 0
  free_port port
  local cmd=("$bin/$binary" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$origin_port" --threads 1)
  start "$name" "${cmd[@]}"
  wait_ready "$name" "http://127.0.0.1:$port/" "$started"
  add_contender "$name" "http://127.0.0.1:$port/" "$started" "$(quote "${cmd[@]}")" "" "$description"
}
if ! $upstream_tls; then
  bare_contender "bare pingora" ballast-bare-pingora \
    "\`ballast-bare-pingora\`: Pingora 0.9 with one listener and \`upstream_peer\` returning one fixed keep-alive peer, nothing else; one thread; the system allocator (glibc)"
  bare_contender "bare pingora mimalloc" ballast-bare-pingora-mimalloc \
    "\`ballast-bare-pingora-mimalloc\`: the same bare proxy built with mimalloc, Ballast's allocator"
fi

if [ -n "$nginx_bin" ] && wanted nginx; then
  free_port nginx_port
  mkdir -p "$tmp/nginx"
  {
    nginx_prelude "$tmp/nginx"
    echo "http {"
    nginx_paths "$tmp/nginx"
    cat <<EOF
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass $upstream_scheme://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";$nginx_tls
        }
    }
}
EOF
  } >"$tmp/nginx/nginx.conf"
  nginx_cmd=("$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf")
  start nginx "${nginx_cmd[@]}"
  wait_ready nginx "http://127.0.0.1:$nginx_port/" "$started"
  add_contender nginx "http://127.0.0.1:$nginx_port/" "$started" "$(quote "${nginx_cmd[@]}")" "$tmp/nginx/nginx.conf" \
    "nginx as a reverse proxy: \`worker_processes 1\`, upstream \`keepalive 128\` over HTTP/1.1, access log off"
fi

if [ -n "$haproxy_bin" ] && wanted haproxy; then
  free_port haproxy_port
  cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:$haproxy_port
    default_backend origin
backend origin
    server origin 127.0.0.1:$origin_port$haproxy_tls
EOF
  "$haproxy_bin" -c -q -f "$tmp/haproxy.cfg"
  haproxy_cmd=("$haproxy_bin" -db -f "$tmp/haproxy.cfg")
  start haproxy "${haproxy_cmd[@]}"
  wait_ready haproxy "http://127.0.0.1:$haproxy_port/" "$started"
  add_contender haproxy "http://127.0.0.1:$haproxy_port/" "$started" "$(quote "${haproxy_cmd[@]}")" "$tmp/haproxy.cfg" \
    "HAProxy: \`nbthread 1\`, \`http-reuse always\`, no logging"
fi

[ ${#names[@]} -gt 0 ] || { echo "error: no contender to run (see --contenders)" >&2; exit 2; }
if [ -z "$reference" ]; then
  reference="${names[0]}"
  for name in "${names[@]}"; do [ "$name" != "ballast latency" ] || reference="$name"; done
fi
found=false
for name in "${names[@]}"; do [ "$name" != "$reference" ] || found=true; done
$found || { echo "error: --reference: \"$reference\" is not among the contenders that run" >&2; exit 2; }

# Every contender must return the origin's body.
expected="$(curl -s -m 2 "${origin_check[@]}")"
for i in "${!names[@]}"; do
  got="$(curl -s -m 2 "${urls[$i]}")"
  [ "$got" = "$expected" ] || { echo "error: ${names[$i]} answered \"$got\", not the origin's body" >&2; exit 1; }
done

# ------------------------------------------------------------- the runs

# bounded SECONDS OUTPUT COMMAND...: run COMMAND for at most SECONDS, its
# output in OUTPUT; in the background, so that Ctrl-C is handled at once.
bounded() {
  local limit="$1" output="$2"
  shift 2
  timeout -k 5 "$limit" "$@" >"$output" &
  tool_pid=$!
  wait "$tool_pid" || { echo "error: $* failed; its output:" >&2; tail -n 20 "$output" >&2; exit 1; }
  tool_pid=""
}
wrk_cmd() { echo "$wrk_bin -t1 -c$connections -d${1}s --latency $2"; }
oha_cmd() { echo "$oha_bin --no-tui --output-format json --worker-threads 1 -z ${1}s -c $connections $2"; }
warmup_cmd() { if [ -n "$wrk_bin" ]; then wrk_cmd "$warmup" "$1"; else oha_cmd "$warmup" "$1"; fi; }

# parse TOOL OUTPUT: print "req/s p50_ms p99_ms errors" from a tool's output.
parse() {
  case "$1" in
    wrk)
      awk '
        function ms(v) {
          if (v ~ /us$/) return v / 1000
          if (v ~ /ms$/) return v + 0
          if (v ~ /m$/) return v * 60000
          if (v ~ /s$/) return v * 1000
          return v
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { errors += $5 }
        END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors }
      ' "$2"
      ;;
    oha)
      # Requests cut short by the end of the run are not errors.
      jq -r '[
          .summary.requestsPerSec,
          .latencyPercentiles.p50 * 1000,
          .latencyPercentiles.p99 * 1000,
          (([.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0)
           + ([.errorDistribution | to_entries[] | select(.key | test("deadline") | not) | .value] | add // 0))
        ] | @tsv' "$2" | awk '{ printf "%.0f %.3f %.3f %d\n", $1, $2, $3, $4 }'
      ;;
  esac
}

results="$tmp/results.tsv"
: >"$results"
count=${#names[@]}
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started_at=$SECONDS
echo "benchmark: ${#names[@]} contenders x ${tools[*]}, $rounds round(s), ${duration} s runs after ${warmup} s warm-up, $connections connections"
for ((round = 1; round <= rounds; round++)); do
  order=()
  for ((k = 0; k < count; k++)); do order+=($(((k + round - 1) % count))); done
  round_tools=("${tools[@]}")
  if ((round % 2 == 0)) && [ ${#tools[@]} -eq 2 ]; then round_tools=("${tools[1]}" "${tools[0]}"); fi
  for i in "${order[@]}"; do
    name="${names[$i]}" url="${urls[$i]}" session="${sessions[$i]}"
    for pid in "$origin_pid" $session; do
      alive "$pid" || { echo "error: a process of $name has exited" >&2; exit 1; }
    done
    # shellcheck disable=SC2046 # the command is split on purpose
    bounded $((warmup + 30)) /dev/null $(warmup_cmd "$url")
    for tool in "${round_tools[@]}"; do
      before=0
      [ -z "$session" ] || before="$(cpu_ticks "$session")"
      t0="$(date +%s%N)"
      output="$tmp/run-$round-$i-$tool.out"
      # shellcheck disable=SC2046
      bounded $((duration + 30)) "$output" $("${tool}_cmd" "$duration" "$url")
      read -r rps p50 p99 errors < <(parse "$tool" "$output")
      t1="$(date +%s%N)"
      cpu="-" cost="-"
      if [ -n "$session" ]; then
        after="$(cpu_ticks "$session")"
        cpu="$(awk -v d=$((after - before)) -v hz="$clock_ticks" -v ns=$((t1 - t0)) \
          'BEGIN { printf "%.0f", 100 * d / hz / (ns / 1e9) }')"
        cost="$(awk -v d=$((after - before)) -v hz="$clock_ticks" -v ns=$((t1 - t0)) -v rps="$rps" \
          'BEGIN { if (rps > 0) printf "%.1f", 1e6 * d / hz / (ns / 1e9) / rps; else print "-" }')"
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$tool" "$rps" "$p50" "$p99" "$errors" "$cpu" "$cost" >>"$results"
      printf '  round %d/%d  %-20s %-4s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s  proxy CPU %s%% (%s us/req)\n' \
        "$round" "$rounds" "$name" "$tool" "$rps" "$p50" "$p99" "$errors" "$cpu" "$cost"
    done
  done
done
elapsed=$((SECONDS - started_at))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --------------------------------------------------------------- report

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
column_of() { # NAME TOOL FIELD: the values of FIELD (4 rps, 5 p50, 6 p99, 7 errors, 8 cpu, 9 cpu per request)
  awk -F'\t' -v n="$1" -v t="$2" -v f="$3" '$2 == n && $3 == t { print $f }' "$results"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "" || b == "-" || a == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

table="$tmp/table.md"
{
  echo "| contender | tool | req/s | p50 (ms) | p99 (ms) | req/s ÷ nginx | p99 ÷ nginx | proxy CPU | CPU µs/req | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for tool in "${tools[@]}"; do
    nginx_rps="-" nginx_p99="-"
    if [ -n "$nginx_bin" ]; then
      nginx_rps="$(column_of nginx "$tool" 4 | median)"
      nginx_p99="$(column_of nginx "$tool" 6 | median)"
    fi
    for name in "${names[@]}"; do
      rps="$(column_of "$name" "$tool" 4 | median | awk '{ print ($1 == "-") ? "-" : sprintf("%.0f", $1) }')"
      p50="$(column_of "$name" "$tool" 5 | median)"
      p99="$(column_of "$name" "$tool" 6 | median)"
      errors="$(column_of "$name" "$tool" 7 | awk '{ s += $1 } END { print s + 0 }')"
      cpu="$(column_of "$name" "$tool" 8 | awk '$1 != "-"' | median)"
      [ "$cpu" = "-" ] || cpu="$cpu %"
      cost="$(column_of "$name" "$tool" 9 | awk '$1 != "-"' | median)"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$tool" "$rps" "$p50" "$p99" \
        "$(ratio "$rps" "$nginx_rps")" "$(ratio "$p99" "$nginx_p99")" "$cpu" "$cost" "$errors"
    done
  done
} >"$table"

# Ballast against the bare Pingora proxies: what its routing, statistics,
# metrics and header handling cost on top of Pingora's own path.
versus_bare="$tmp/versus-bare.md"
$upstream_tls || {
  echo "| contender | tool | req/s ÷ bare (glibc) | req/s ÷ bare (mimalloc) | CPU µs/req ÷ bare (glibc) | CPU µs/req ÷ bare (mimalloc) |"
  echo "|---|---|---:|---:|---:|---:|"
  for tool in "${tools[@]}"; do
    bare_rps="$(column_of "bare pingora" "$tool" 4 | median)"
    bare_cost="$(column_of "bare pingora" "$tool" 9 | awk '$1 != "-"' | median)"
    barem_rps="$(column_of "bare pingora mimalloc" "$tool" 4 | median)"
    barem_cost="$(column_of "bare pingora mimalloc" "$tool" 9 | awk '$1 != "-"' | median)"
    for name in "${names[@]}"; do
      case "$name" in ballast*) ;; *) continue ;; esac
      rps="$(column_of "$name" "$tool" 4 | median)"
      cost="$(column_of "$name" "$tool" 9 | awk '$1 != "-"' | median)"
      printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$tool" \
        "$(ratio "$rps" "$bare_rps")" "$(ratio "$rps" "$barem_rps")" \
        "$(ratio "$cost" "$bare_cost")" "$(ratio "$cost" "$barem_cost")"
    done
  done
} >"$versus_bare"

# Each contender against the reference, round by round: the two ran
# minutes apart at most, so a drift of the machine's speed cancels out.
paired="$tmp/paired.md"
paired_ratios() { # NAME TOOL FIELD: per round, NAME's FIELD ÷ the reference's
  awk -F'\t' -v n="$1" -v r="$reference" -v t="$2" -v f="$3" '
    $3 == t && ($2 == n || $2 == r) && $f != "-" { v[$1, $2] = $f; seen[$1] = 1 }
    END { for (k in seen) if ((k, n) in v && (k, r) in v && v[k, r] + 0 > 0) printf "%.4f\n", v[k, n] / v[k, r] }
  ' "$results"
}
spread() { # the median of the numbers on stdin and its 95 % confidence interval: "m [lo–hi]"
  # (order statistics j = ⌊n/2 − 0.98√n⌋ and k = ⌈1 + n/2 + 0.98√n⌉, clamped to 1..n)
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    j = int(NR / 2 - 0.98 * sqrt(NR)); if (j < 1) j = 1
    k = 1 + NR / 2 + 0.98 * sqrt(NR); k = (k == int(k)) ? k : int(k) + 1; if (k > NR) k = NR
    printf "%.3f [%.3f–%.3f]\n", m, v[j], v[k] }'
}
{
  echo "| contender | tool | rounds | req/s ÷ $reference | p99 ÷ $reference | CPU µs/req ÷ $reference |"
  echo "|---|---|---:|---:|---:|---:|"
  for tool in "${tools[@]}"; do
    for name in "${names[@]}"; do
      [ "$name" != "$reference" ] || continue
      printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$tool" "$(paired_ratios "$name" "$tool" 4 | wc -l)" \
        "$(paired_ratios "$name" "$tool" 4 | spread)" "$(paired_ratios "$name" "$tool" 6 | spread)" \
        "$(paired_ratios "$name" "$tool" 9 | spread)"
    done
  done
} >"$paired"

echo
echo "medians over $rounds round(s):"
sed 's/^| //; s/ |$//; /^|---/d' "$table" | column -t -s '|'
echo
[ ! -f "$versus_bare" ] || sed 's/^| //; s/ |$//; /^|---/d' "$versus_bare" | column -t -s '|'
echo
echo "paired, round by round (median of the per-round ratios [its 95 % confidence interval]):"
sed 's/^| //; s/ |$//; /^|---/d' "$paired" | column -t -s '|'
for message in "${skipped[@]}"; do echo "note: $message"; done

mkdir -p "$out"
report="$out/bench.md"
! $upstream_tls || report="$out/bench-upstream-tls.md"
version_of() { "$@" 2>&1 | head -n 1 || true; }
pingora_version="$(awk '/^name = "pingora"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
fence='```'
# display: the report shows the temporary directory as $RUN, the build
# directory as $CARGO_TARGET_DIR and the tools by name.
display() {
  local line tool_bin
  while IFS= read -r line; do
    line="${line//"$tmp"/\$RUN}"
    line="${line//"$bin/"/\$CARGO_TARGET_DIR/$profile/}"
    for tool_bin in "$nginx_bin" "$haproxy_bin" "$wrk_bin" "$oha_bin"; do
      [ -z "$tool_bin" ] || line="${line//"$tool_bin"/${tool_bin##*/}}"
    done
    echo "$line"
  done
}
{
  echo "# Throughput benchmark$($upstream_tls && echo ", upstream over TLS"), $(date +%F)"
  echo
  echo "Produced by \`load-tests/bench.sh$($quick && echo " --quick")$($upstream_tls && echo " --upstream-tls")$([ -z "$contender_list" ] || printf ' --contenders "%s"' "$contender_list")$([ "$reference" = "ballast latency" ] || printf ' --reference "%s"' "$reference") --duration $duration --warmup $warmup --connections $connections --rounds $rounds --profile $profile\`"
  echo "at commit $commit, in ${elapsed} s of measuring."
  echo
  echo "Closed-loop load on loopback: each tool keeps $connections keep-alive connections"
  echo "busy for $duration s per run. Every round runs each contender once (the order"
  echo "rotates by one each round, and the two tools alternate which goes first),"
  echo "after a $warmup s warm-up. Figures are the medians across $rounds round(s)"
  echo "of each column separately; errors are summed. \"proxy CPU\" is the CPU time"
  echo "the proxy's processes used during the run, as a percentage of one core,"
  echo "and \"CPU µs/req\" that CPU time divided by the requests served."
  echo "Ratios compare with nginx as a proxy, measured by the same tool."
  echo
  cat "$table"
  echo
  if [ -f "$versus_bare" ]; then
    echo "Ballast against the bare Pingora proxy (same tool, medians):"
    echo
    cat "$versus_bare"
    echo
  fi
  echo "Paired: each contender against **$reference** in the same round, the"
  echo "median of the per-round ratios and, in brackets, that median's 95 %"
  echo "confidence interval (from the order statistics; a slow spell of the"
  echo "machine touches both sides of a pair):"
  echo
  cat "$paired"
  echo
  for message in "${skipped[@]}"; do echo "Note: $message."; echo; done
  echo "## Machine"
  echo
  echo "- $(nproc) CPUs: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "- $(uname -sr), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) of memory"
  echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after"
  echo "- the load tool, the origin and the proxy share these CPUs"
  echo
  echo "## Versions"
  echo
  echo "- $("$bin/ballast" --version), built by $(rustc --version), profile $profile; Pingora $pingora_version"
  [ -z "$nginx_bin" ] || echo "- $(version_of "$nginx_bin" -v)"
  [ -z "$haproxy_bin" ] || echo "- $(version_of "$haproxy_bin" -v)"
  [ -z "$wrk_bin" ] || echo "- $(version_of "$wrk_bin" -v)"
  [ -z "$oha_bin" ] || echo "- $(version_of "$oha_bin" --version)"
  echo
  echo "## Contenders"
  echo
  echo "The origin: $origin_desc."
  echo
  for i in "${!names[@]}"; do echo "- **${names[$i]}**: ${descriptions[$i]}."; done
  echo
  echo "## Commands"
  echo
  echo "\`\$RUN\` is the run's temporary directory; ports are picked free at each run."
  echo
  echo "$fence sh"
  echo "$(warmup_cmd URL | display) > /dev/null   # warm-up"
  [ -z "$wrk_bin" ] || wrk_cmd "$duration" URL | display
  [ -z "$oha_bin" ] || oha_cmd "$duration" URL | display
  echo "$fence"
  echo
  for i in "${!names[@]}"; do
    echo "**${names[$i]}** (URL \`${urls[$i]}\`)"
    echo
    echo "$fence sh"
    echo "${commands[$i]}" | display
    echo "$fence"
    echo
    if [ -n "${configs[$i]}" ]; then
      echo "<details><summary>$(basename "${configs[$i]}")</summary>"
      echo
      echo "$fence"
      display <"${configs[$i]}"
      echo "$fence"
      echo
      echo "</details>"
      echo
    fi
  done
  echo "## Every run"
  echo
  echo "| round | contender | tool | req/s | p50 (ms) | p99 (ms) | errors | proxy CPU % | CPU µs/req |"
  echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$results"
} >"$report"
echo
echo "report: $report"
