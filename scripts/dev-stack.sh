#!/usr/bin/env bash
# A local stack to invoke one function at a time (README, "Invoke one function locally"):
#
#   scripts/dev-stack.sh up                       # moto + SMTP, the template's tables and queues, sample data, env files
#   scripts/dev-stack.sh invoke FUNCTION EVENT    # one function, one event, its answer printed
#   scripts/dev-stack.sh symphony ARGS...         # the symphony CLI against the dev stack
#   scripts/dev-stack.sh mail                     # what the SMTP server received
#   scripts/dev-stack.sh texts                    # what SNS (moto) sent
#   scripts/dev-stack.sh status                   # what is running, where
#   scripts/dev-stack.sh down                     # stops both servers (by PID); nothing left running
#
# DEV_STACK_DIR (default .local/dev-stack), DEV_STACK_MOTO_PORT (5055) and
# DEV_STACK_SMTP_PORT (2525) choose where it lives. `up` on a running stack changes nothing.
# DEV_STACK_BIN_DIR runs binaries already built there instead of building them (the
# tests run the README's lines this way, as cargo has built everything already).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/symphony-target}"
dir="${DEV_STACK_DIR:-$PWD/.local/dev-stack}"
moto_port="${DEV_STACK_MOTO_PORT:-5055}"
smtp_port="${DEV_STACK_SMTP_PORT:-2525}"
endpoint="http://127.0.0.1:$moto_port"
stack=symphony-dev
bin_dir="${DEV_STACK_BIN_DIR:-}"

# Runs one of the project's binaries: built (if need be) by cargo, or from $bin_dir.
run_bin() {
  local package=$1 binary=$2
  shift 2
  if [[ -n $bin_dir ]]; then
    "$bin_dir/$binary" "$@"
  else
    cargo run --quiet -p "$package" --bin "$binary" -- "$@"
  fi
}

# The server `name` runs: its pid file names a live process that is that server (a pid
# file left by a reboot may name someone else's process now).
running() {
  local name=$1 script pid
  script=$([[ $name == moto ]] && echo moto_server.py || echo smtp_recorder.py)
  [[ -f "$dir/$name.pid" ]] || return 1
  pid="$(cat "$dir/$name.pid")"
  ps -p "$pid" -o args= 2>/dev/null | grep -q "$script"
}

# The stack is up: both servers run and their set-up finished.
up_and_ready() { running moto && running smtp && [[ -f "$dir/ready" ]]; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "dev-stack: $name did not open port $port (see $dir/$name.log)" >&2
  return 1
}

stop() {
  local stopped=0
  for name in moto smtp; do
    if running "$name"; then
      local pid
      pid="$(cat "$dir/$name.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do running "$name" || break; sleep 0.25; done
      if running "$name"; then kill -9 "$pid" 2>/dev/null || true; fi
      echo "stopped $name (pid $pid)"
      stopped=1
    fi
    rm -f "$dir/$name.pid"
  done
  rm -f "$dir/ready"
  [[ $stopped == 1 ]] || echo "nothing was running"
}

status() {
  if up_and_ready; then
    echo "dev stack $stack is up:"
    echo "  moto (SQS, DynamoDB, SNS)  $endpoint          pid $(cat "$dir/moto.pid")"
    echo "  SMTP server                127.0.0.1:$smtp_port     pid $(cat "$dir/smtp.pid"), mail in $dir/mail"
    echo "  environments               $dir/env/<function>.env, $dir/sam-env.json"
    echo "next:"
    echo "  scripts/dev-stack.sh symphony flags enable email"
    echo "  scripts/dev-stack.sh invoke process-email-queue events/example-eventbridge-email-queue.json"
    echo "  scripts/dev-stack.sh invoke handle-email events/example-sqs-email.json"
    echo "  scripts/dev-stack.sh mail"
    echo "  scripts/dev-stack.sh down"
  else
    echo "dev stack is down (scripts/dev-stack.sh up)"
    return 1
  fi
}

case "${1:-}" in
  up)
    if up_and_ready; then
      echo "already up; nothing changed (after a change to template.yaml: down, then up)"
      status
      exit 0
    fi
    stop >/dev/null
    for port in "$moto_port" "$smtp_port"; do
      port_free "$port" || { echo "dev-stack: port $port is taken (DEV_STACK_MOTO_PORT, DEV_STACK_SMTP_PORT choose others)" >&2; exit 1; }
    done
    scripts/python-env.sh
    rm -rf "$dir/mail"
    mkdir -p "$dir/mail" "$dir/env"
    nohup .venv/bin/python scripts/moto_server.py 127.0.0.1 "$moto_port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    nohup .venv/bin/python scripts/smtp_recorder.py --port "$smtp_port" --out "$dir/mail" >"$dir/smtp.log" 2>&1 &
    echo $! >"$dir/smtp.pid"
    if ! wait_for_port "$moto_port" moto || ! wait_for_port "$smtp_port" smtp \
      || ! running moto || ! running smtp \
      || ! run_bin symphony-tests dev-stack setup "$endpoint" "$smtp_port" "$dir"; then
      stop >/dev/null
      echo "dev-stack: up failed; nothing left running (logs in $dir)" >&2
      exit 1
    fi
    touch "$dir/ready"
    status
    ;;
  down) stop ;;
  status) status ;;
  invoke)
    [[ $# == 3 ]] || { echo "usage: scripts/dev-stack.sh invoke FUNCTION EVENT_FILE" >&2; exit 2; }
    up_and_ready || { echo "dev-stack: the dev stack is down (scripts/dev-stack.sh up)" >&2; exit 1; }
    [[ -d "functions/$2" ]] || { echo "dev-stack: no function $2 (see functions/)" >&2; exit 2; }
    if [[ -z $bin_dir ]]; then cargo build --quiet -p "$2"; fi
    DEV_STACK_FUNCTIONS_DIR="${bin_dir:-$CARGO_TARGET_DIR/debug}" run_bin symphony-tests dev-stack invoke "$dir" "$2" "$3"
    ;;
  symphony)
    shift
    up_and_ready || { echo "dev-stack: the dev stack is down (scripts/dev-stack.sh up)" >&2; exit 1; }
    AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
      run_bin symphony-cli symphony --stack "$stack" "$@"
    ;;
  mail) run_bin symphony-tests dev-stack mail "$dir" ;;
  texts) run_bin symphony-tests dev-stack texts "$moto_port" ;;
  *)
    sed -n '2,16p' scripts/dev-stack.sh | grep '^#' | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
