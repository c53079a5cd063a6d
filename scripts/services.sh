#!/usr/bin/env bash
# scripts/services.sh — make PostgreSQL (>= 15) and Redis (>= 7) available to Eddy.
#
#   scripts/services.sh up       find or start both servers, write .eddy/env
#   scripts/services.sh down     stop the private instances that `up` started (data is kept)
#   scripts/services.sh status   show what .eddy/env points at and what is running
#   scripts/services.sh browser  install Debian's Chromium for the browser tests if missing
#   scripts/services.sh node     install Node.js and npm if missing (make web builds with them)
#
# How `up` picks each server, first match wins:
#   1. EDDY_DATABASE_URL / EDDY_REDIS_URL, if set. It must answer, or we fail.
#   2. A server already running on the default local port: PostgreSQL on 127.0.0.1:5432
#      that lets us in as role `postgres` without a password, and Redis on 127.0.0.1:6379.
#      Skipped when EDDY_PRIVATE_SERVICES=1.
#   3. Private instances whose data lives under .eddy/ (git-ignored, kept across runs):
#      PostgreSQL on 127.0.0.1:15432 and Redis on 127.0.0.1:16379. Missing server packages
#      are installed with apt-get first. A private instance left running by an earlier
#      `up` is reused.
# Then it creates the database named in the URL (default `eddy`) if missing, and writes
# .eddy/env, which exports EDDY_DATABASE_URL, EDDY_REDIS_URL, EDDY_TEST_DATABASE_URL (the
# same server's `postgres` maintenance database) and EDDY_TEST_REDIS_URL (Redis db 0).
# It also makes sure node and npm exist (the Node SDK test needs them).
#
# Why private instances and not the Debian-packaged services: a freshly installed Debian
# cluster only lets the `postgres` OS user in (peer auth; scram for TCP), and we will not
# rewrite a system-wide pg_hba.conf or set a password on the system's `postgres` role.
# A private cluster is created with trust auth for 127.0.0.1 only, on a port of its own,
# so it never fights with a system server, and `down` can stop it without touching
# anything else. Likewise a private Redis is started with AOF on (appendfsync everysec),
# which Eddy's queue needs to survive a Redis restart; the packaged one has it off.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
EDDY_DIR="$ROOT/.eddy"
ENV_FILE="$EDDY_DIR/env"

PG_MIN_MAJOR=15
REDIS_MIN_MAJOR=7
PG_DEFAULT_URL='postgres://postgres@127.0.0.1:5432/eddy?sslmode=disable'
REDIS_DEFAULT_URL='redis://127.0.0.1:6379/0'
PG_PRIVATE_PORT=15432
REDIS_PRIVATE_PORT=16379
PG_PRIVATE_URL="postgres://postgres@127.0.0.1:$PG_PRIVATE_PORT/eddy?sslmode=disable"
REDIS_PRIVATE_URL="redis://127.0.0.1:$REDIS_PRIVATE_PORT/0"

PG_DATA="$EDDY_DIR/postgres"          # private cluster's data directory (mode 0700)
PG_RUN="$EDDY_DIR/postgres-run"       # its unix socket and log file
PG_DEBIAN_MARK="$EDDY_DIR/postgres-debian-cluster"  # "<ver> <name>" when we fell back to a Debian cluster
PG_DEBIAN_NAME=eddy
REDIS_DIR="$EDDY_DIR/redis"           # private Redis: AOF, RDB, pid and log file

export PGCONNECT_TIMEOUT=5

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

# redact hides the password in a URL: scheme://user:secret@host -> scheme://user:***@host
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# shq quotes a value for a POSIX shell: it'Sv -> 'it'\''Sv'
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

is_root() { [[ $(id -u) == 0 ]]; }

# ---------------------------------------------------------------------------- packages

APT_UPDATED=0
apt_install() {
	command -v apt-get >/dev/null 2>&1 ||
		die "need to install $* but this machine has no apt-get; install them yourself, or set EDDY_DATABASE_URL / EDDY_REDIS_URL to servers that run elsewhere"
	local sudo=()
	if ! is_root; then
		command -v sudo >/dev/null 2>&1 || die "need to install $* as root, but not root and no sudo"
		sudo=(sudo)
	fi
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 9>&- || die "apt-get update failed"
		APT_UPDATED=1
	fi
	log "apt-get install -y --no-install-recommends $*"
	# --no-install-recommends: Debian's npm alone otherwise recommends ~700 MB (X11 included).
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2 9>&- ||
		die "apt-get install $* failed"
}

ensure_clients() {
	local want=()
	command -v psql >/dev/null 2>&1 || want+=(postgresql-client)
	command -v redis-cli >/dev/null 2>&1 || want+=(redis-tools)
	if ((${#want[@]})); then apt_install "${want[@]}"; fi
	command -v psql >/dev/null 2>&1 || die "psql still missing after installing postgresql-client"
	command -v redis-cli >/dev/null 2>&1 || die "redis-cli still missing after installing redis-tools"
}

ensure_node() {
	# One at a time: some nodejs builds (e.g. NodeSource's) bundle npm and conflict with
	# Debian's npm package, so only ask for npm if it is still missing after nodejs.
	if ! command -v node >/dev/null 2>&1; then apt_install nodejs; fi
	if ! command -v npm >/dev/null 2>&1; then apt_install npm ca-certificates; fi
	command -v node >/dev/null 2>&1 || die "node still missing after installing nodejs"
	command -v npm >/dev/null 2>&1 || die "npm still missing after installing npm"
	local major minor
	major=$(node -p 'process.versions.node.split(".")[0]')
	minor=$(node -p 'process.versions.node.split(".")[1]')
	if ((major < 20 || (major == 20 && minor < 19))); then
		# Debian 12 and Ubuntu 24.04 ship node 18: the console's build tool (Vite 8) refuses it.
		die "node $(node --version) is too old: the console's build (Vite 8) needs Node.js 20.19 or later (e.g. from NodeSource, or nvm)"
	fi
}

# ---------------------------------------------------------------------------- PostgreSQL

# pg_split URL: sets PG_BASE (scheme://authority), PG_DB (default eddy) and PG_QUERY ("?..." or "").
pg_split() {
	local re='^(postgres(ql)?://[^/?]*)(/([^?]*))?(\?.*)?$'
	[[ $1 =~ $re ]] || die "not a postgres:// URL: $(redact "$1")"
	PG_BASE=${BASH_REMATCH[1]}
	PG_DB=${BASH_REMATCH[4]:-eddy}
	PG_QUERY=${BASH_REMATCH[5]}
}

# pg_probe URL: succeeds if the server answers and lets us in; sets PG_VERSION_NUM / PG_VERSION,
# or PG_ERR with the reason it failed.
pg_probe() {
	local out
	PG_ERR=
	if ! out=$(psql -X -w -A -t -q -d "$1" -c 'show server_version_num' -c 'show server_version' 2>&1); then
		PG_ERR=$(tr '\n' ' ' <<<"$out")
		return 1
	fi
	PG_VERSION_NUM=$(sed -n 1p <<<"$out")
	PG_VERSION=$(sed -n 2p <<<"$out" | awk '{print $1}')
}

pg_version_ok() { ((PG_VERSION_NUM >= PG_MIN_MAJOR * 10000)); }

# pg_use URL: the server behind URL answers (through its own database or the maintenance
# database `postgres`) and is new enough.
pg_use() {
	pg_split "$1"
	pg_probe "$PG_BASE/postgres$PG_QUERY" || pg_probe "$PG_BASE/$PG_DB$PG_QUERY" || return 1
	if ! pg_version_ok; then
		PG_ERR="it runs PostgreSQL $PG_VERSION; Eddy needs >= $PG_MIN_MAJOR"
		return 1
	fi
}

# pg_bindir: the Debian binaries of the newest installed PostgreSQL >= PG_MIN_MAJOR.
pg_bindir() {
	local d best='' bestver=0 v
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/pg_ctl ]] || continue
		v=${d#/usr/lib/postgresql/}
		v=${v%/bin}
		[[ $v =~ ^[0-9]+$ ]] || continue
		if ((v >= PG_MIN_MAJOR && v > bestver)); then best=$d bestver=$v; fi
	done
	if [[ -z $best ]] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		d=$(dirname "$(command -v pg_ctl)")
		v=$("$d/pg_ctl" --version | sed -E 's/.* ([0-9]+)[.].*/\1/')
		if [[ $v =~ ^[0-9]+$ ]] && ((v >= PG_MIN_MAJOR)); then best=$d; fi
	fi
	[[ -n $best ]] && echo "$best"
}

# as_pg runs a PostgreSQL server tool: as the `postgres` OS user when we are root
# (the server refuses to run as root), else as ourselves.
as_pg() {
	if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_data_bindir: the binaries matching the version of the cluster in .eddy/postgres.
pg_data_bindir() {
	local ver bindir
	[[ -s $PG_DATA/PG_VERSION ]] || return 1
	ver=$(cat "$PG_DATA/PG_VERSION")
	bindir=/usr/lib/postgresql/$ver/bin
	[[ -x $bindir/pg_ctl ]] || bindir=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
	[[ -x $bindir/pg_ctl ]] && echo "$bindir"
}

pg_private_running() {
	local bindir
	bindir=$(pg_data_bindir) || return 1
	as_pg "$bindir/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# pg_start_private starts (or reuses) the private cluster on 127.0.0.1:PG_PRIVATE_PORT.
pg_start_private() {
	local bindir
	if ! bindir=$(pg_bindir); then
		apt_install postgresql
		bindir=$(pg_bindir) ||
			die "no PostgreSQL >= $PG_MIN_MAJOR after 'apt-get install postgresql' (this OS release ships an older one). Install postgresql-$PG_MIN_MAJOR or newer (e.g. from the PGDG apt repository), or set EDDY_DATABASE_URL"
	fi
	if is_root && ! id postgres >/dev/null 2>&1; then
		die "running as root and there is no 'postgres' OS user to run the server as (PostgreSQL refuses to run as root)"
	fi

	if pg_private_running && pg_use "$PG_PRIVATE_URL"; then
		PG_HOW="private instance on 127.0.0.1:$PG_PRIVATE_PORT, data in .eddy/postgres (reused, already running)"
		return
	fi
	if pg_use "$PG_PRIVATE_URL"; then
		# Something else already serves the private port and lets us in: another checkout's
		# private instance, or the Debian fallback cluster below. Use it rather than fight.
		PG_HOW="instance already running on 127.0.0.1:$PG_PRIVATE_PORT (not this checkout's .eddy/postgres; 'down' leaves it alone unless it is the Debian fallback cluster)"
		if [[ -f $PG_DEBIAN_MARK ]]; then PG_HOW="Debian cluster $(cat "$PG_DEBIAN_MARK") on 127.0.0.1:$PG_PRIVATE_PORT (reused, already running)"; fi
		return
	fi

	mkdir -p "$PG_DATA" "$PG_RUN"
	if is_root; then
		chmod a+x "$EDDY_DIR" # traversable (not listable) by the postgres user
		if ! runuser -u postgres -- test -x "$EDDY_DIR"; then
			# Some parent of the repo (e.g. /root, mode 0700) is closed to the postgres user,
			# so a data directory under .eddy/ cannot work. Fall back to a Debian-managed
			# cluster of our own (not `main`: on a fresh install `main` only admits the
			# postgres OS user, and we won't change its auth or passwords).
			pg_start_debian_cluster "$bindir"
			return
		fi
		chown postgres:postgres "$PG_DATA" "$PG_RUN"
	fi
	chmod 0700 "$PG_DATA"

	if [[ -s $PG_DATA/PG_VERSION ]]; then
		local ver
		ver=$(cat "$PG_DATA/PG_VERSION")
		if [[ -x /usr/lib/postgresql/$ver/bin/pg_ctl ]]; then
			bindir=/usr/lib/postgresql/$ver/bin
		elif [[ $("$bindir/pg_ctl" --version | sed -E 's/.* ([0-9]+)[.].*/\1/') != "$ver" ]]; then
			die ".eddy/postgres holds a PostgreSQL $ver cluster but PostgreSQL $ver is not installed; install postgresql-$ver, or remove .eddy/postgres to start afresh (its data is lost)"
		fi
	else
		log "initdb: new private PostgreSQL cluster in .eddy/postgres ($bindir)"
		local initlog="$PG_RUN/initdb.log"
		if ! as_pg "$bindir/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$initlog" 2>&1; then
			cat "$initlog" >&2
			die "initdb failed (see above)"
		fi
		# Settings that depend on where the repo is live in eddy.conf, rewritten on each start.
		printf "\n# added by scripts/services.sh\ninclude_if_exists = 'eddy.conf'\n" >>"$PG_DATA/postgresql.conf"
	fi

	# The unix socket path must fit in sun_path (107 bytes); if the repo path is too long,
	# go without a socket: everything connects over TCP anyway.
	local sockdir="$PG_RUN"
	if ((${#sockdir} + 20 > 107)); then sockdir=''; fi
	local conf="$PG_DATA/eddy.conf"
	printf "# written by scripts/services.sh on each start\nlisten_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" \
		"$PG_PRIVATE_PORT" "${sockdir//\'/\'\'}" >"$conf"
	if is_root; then chown postgres:postgres "$conf"; fi

	log "starting private PostgreSQL on 127.0.0.1:$PG_PRIVATE_PORT (log: .eddy/postgres-run/postgres.log)"
	if ! as_pg "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_RUN/postgres.log" -w -t 60 start >/dev/null 9>&-; then
		tail -n 20 "$PG_RUN/postgres.log" >&2 || true
		die "private PostgreSQL did not start (last log lines above; is port $PG_PRIVATE_PORT taken by something else?)"
	fi
	pg_use "$PG_PRIVATE_URL" || die "private PostgreSQL started but does not let us in: $PG_ERR"
	PG_HOW="private instance on 127.0.0.1:$PG_PRIVATE_PORT, data in .eddy/postgres (started)"
}

# pg_start_debian_cluster BINDIR: create (once) and start a Debian-managed cluster named
# $PG_DEBIAN_NAME on 127.0.0.1:PG_PRIVATE_PORT with trust auth.
pg_start_debian_cluster() {
	local ver
	ver=$(basename "$(dirname "$1")")
	if [[ ! $ver =~ ^[0-9]+$ ]] || ! command -v pg_createcluster >/dev/null 2>&1; then
		die "$ROOT is not reachable by the postgres OS user (a parent directory is not traversable), and there are no Debian cluster tools to fall back on; move the repo, or set EDDY_DATABASE_URL"
	fi
	log "NOTE: $ROOT is not reachable by the postgres OS user (a parent directory is not traversable),"
	log "      so the data cannot live in .eddy/. Using the Debian-managed cluster '$ver $PG_DEBIAN_NAME'"
	log "      (data in /var/lib/postgresql/$ver/$PG_DEBIAN_NAME) on 127.0.0.1:$PG_PRIVATE_PORT instead."
	if ! pg_lsclusters -h | awk -v v="$ver" -v n="$PG_DEBIAN_NAME" '$1==v && $2==n {f=1} END {exit !f}'; then
		# Debian's default listen_addresses (localhost) keeps it off the network.
		if ! pg_createcluster "$ver" "$PG_DEBIAN_NAME" -p "$PG_PRIVATE_PORT" --start-conf=manual \
			-- --auth=trust --encoding=UTF8 --no-locale >"$EDDY_DIR/pg_createcluster.log" 2>&1 9>&-; then
			cat "$EDDY_DIR/pg_createcluster.log" >&2
			die "pg_createcluster $ver $PG_DEBIAN_NAME failed (output above)"
		fi
	fi
	echo "$ver $PG_DEBIAN_NAME" >"$PG_DEBIAN_MARK"
	pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_DEBIAN_NAME" start >&2 9>&- || true # non-zero if already running
	pg_use "$PG_PRIVATE_URL" ||
		die "Debian cluster $ver $PG_DEBIAN_NAME does not let us in on 127.0.0.1:$PG_PRIVATE_PORT: $PG_ERR"
	PG_HOW="Debian cluster '$ver $PG_DEBIAN_NAME' on 127.0.0.1:$PG_PRIVATE_PORT (repo path not reachable by the postgres user)"
}

# pg_ensure_db creates the database named in PG_URL if it does not exist.
pg_ensure_db() {
	pg_split "$PG_URL"
	local admin="$PG_BASE/postgres$PG_QUERY" sql
	if psql -X -w -q -d "$PG_BASE/$PG_DB$PG_QUERY" -c 'select 1' >/dev/null 2>&1; then return; fi
	sql="select format('create database %I', :'db') where not exists (select from pg_database where datname = :'db') \\gexec"
	if ! psql -X -w -q -v ON_ERROR_STOP=1 -v db="$PG_DB" -d "$admin" <<<"$sql" >/dev/null 2>"$EDDY_DIR/createdb.err"; then
		# Another `up` may have created it at the same moment; only fail if it is still missing.
		psql -X -w -q -d "$PG_BASE/$PG_DB$PG_QUERY" -c 'select 1' >/dev/null 2>&1 || {
			cat "$EDDY_DIR/createdb.err" >&2
			die "could not create database '$PG_DB' on $(redact "$PG_BASE")"
		}
	else
		log "created database '$PG_DB'"
	fi
	rm -f "$EDDY_DIR/createdb.err"
}

resolve_postgres() {
	if [[ -n ${EDDY_DATABASE_URL:-} ]]; then
		pg_split "$EDDY_DATABASE_URL"
		PG_URL="$PG_BASE/$PG_DB$PG_QUERY"
		if pg_use "$PG_URL"; then
			PG_HOW="from EDDY_DATABASE_URL"
		elif [[ $PG_BASE == "${PG_PRIVATE_URL%%/eddy*}" ]]; then
			# It points at our private instance (typically from a sourced .eddy/env after `down`).
			log "EDDY_DATABASE_URL points at the private instance on port $PG_PRIVATE_PORT, which is not answering: starting it"
			pg_start_private
		else
			die "EDDY_DATABASE_URL=$(redact "$EDDY_DATABASE_URL") does not work: $PG_ERR"
		fi
	elif [[ ${EDDY_PRIVATE_SERVICES:-} != 1 ]] && pg_use "$PG_DEFAULT_URL"; then
		PG_URL=$PG_DEFAULT_URL
		PG_HOW="the server already running on 127.0.0.1:5432"
	else
		if [[ ${EDDY_PRIVATE_SERVICES:-} == 1 ]]; then
			log "EDDY_PRIVATE_SERVICES=1: not looking at 127.0.0.1:5432"
		else
			log "no usable PostgreSQL >= $PG_MIN_MAJOR on 127.0.0.1:5432 as role postgres (${PG_ERR:-no answer}); using a private instance"
		fi
		pg_start_private
		PG_URL=$PG_PRIVATE_URL
	fi
	pg_ensure_db
	pg_split "$PG_URL"
	PG_TEST_URL="$PG_BASE/postgres$PG_QUERY"
}

# ---------------------------------------------------------------------------- Redis

# redis_split URL: sets REDIS_BASE (scheme://authority) and REDIS_QUERY.
redis_split() {
	local re='^(rediss?://[^/?]*)(/([0-9]*))?(\?.*)?$'
	[[ $1 =~ $re ]] || die "not a redis:// URL: $(redact "$1")"
	REDIS_BASE=${BASH_REMATCH[1]}
	REDIS_QUERY=${BASH_REMATCH[4]}
}

redis_cli() { # redis_cli URL ARGS...
	local url=$1 tls=()
	shift
	[[ $url == rediss://* ]] && tls=(--tls)
	timeout 10 redis-cli "${tls[@]}" --no-auth-warning -u "${url%%\?*}" "$@"
}

# redis_use URL: answers PING with PONG and runs Redis >= 7; sets REDIS_VERSION or REDIS_ERR.
redis_use() {
	local out
	REDIS_ERR=
	out=$(redis_cli "$1" ping 2>&1) || true
	if [[ $out != PONG ]]; then
		REDIS_ERR=${out:-no answer}
		return 1
	fi
	REDIS_VERSION=$(redis_cli "$1" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
	if [[ ! $REDIS_VERSION =~ ^[0-9]+ ]] || ((${REDIS_VERSION%%.*} < REDIS_MIN_MAJOR)); then
		REDIS_ERR="it runs Redis ${REDIS_VERSION:-of unknown version}; Eddy needs >= $REDIS_MIN_MAJOR"
		return 1
	fi
}

redis_private_pid() { # prints the pid of our private redis-server, if it runs
	local pid
	pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] || return 1
	echo "$pid"
}

redis_start_private() {
	if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server; fi
	command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after installing redis-server"
	local v
	v=$(redis-server --version | sed -nE 's/.* v=([0-9]+)[.].*/\1/p')
	if [[ ! $v =~ ^[0-9]+$ ]] || ((v < REDIS_MIN_MAJOR)); then
		die "installed redis-server is $(redis-server --version | awk '{print $3}'); Eddy needs Redis >= $REDIS_MIN_MAJOR. Install a newer one, or set EDDY_REDIS_URL"
	fi

	if redis_private_pid >/dev/null && redis_use "$REDIS_PRIVATE_URL"; then
		REDIS_HOW="private instance on 127.0.0.1:$REDIS_PRIVATE_PORT, data in .eddy/redis (reused, already running)"
		return
	fi
	if redis_use "$REDIS_PRIVATE_URL"; then
		REDIS_HOW="instance already running on 127.0.0.1:$REDIS_PRIVATE_PORT (not this checkout's; 'down' leaves it alone)"
		return
	fi

	mkdir -p "$REDIS_DIR"
	log "starting private Redis on 127.0.0.1:$REDIS_PRIVATE_PORT with AOF (log: .eddy/redis/redis.log)"
	redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PRIVATE_PORT" \
		--dir "$REDIS_DIR" --appendonly yes --appendfsync everysec \
		--pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >&2 9>&- ||
		die "redis-server failed to start"
	local i
	for ((i = 0; i < 120; i++)); do # up to 60 s: loading a big AOF takes a while
		if redis_use "$REDIS_PRIVATE_URL"; then
			REDIS_HOW="private instance on 127.0.0.1:$REDIS_PRIVATE_PORT, data in .eddy/redis (started)"
			return
		fi
		sleep 0.5
	done
	tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
	die "private Redis did not answer on 127.0.0.1:$REDIS_PRIVATE_PORT: $REDIS_ERR (last log lines above)"
}

resolve_redis() {
	if [[ -n ${EDDY_REDIS_URL:-} ]]; then
		REDIS_URL=$EDDY_REDIS_URL
		redis_split "$REDIS_URL"
		if redis_use "$REDIS_URL"; then
			REDIS_HOW="from EDDY_REDIS_URL"
		elif [[ $REDIS_BASE == "redis://127.0.0.1:$REDIS_PRIVATE_PORT" ]]; then
			log "EDDY_REDIS_URL points at the private instance on port $REDIS_PRIVATE_PORT, which is not answering: starting it"
			redis_start_private
		else
			die "EDDY_REDIS_URL=$(redact "$EDDY_REDIS_URL") does not work: $REDIS_ERR"
		fi
	elif [[ ${EDDY_PRIVATE_SERVICES:-} != 1 ]] && redis_use "$REDIS_DEFAULT_URL"; then
		REDIS_URL=$REDIS_DEFAULT_URL
		REDIS_HOW="the server already running on 127.0.0.1:6379"
		local aof
		aof=$(redis_cli "$REDIS_URL" config get appendonly 2>/dev/null | sed -n 2p | tr -d '\r') || true
		if [[ $aof == no ]]; then
			log "note: the Redis on 127.0.0.1:6379 runs with appendonly=no; queued events would not survive a Redis restart"
		fi
	else
		if [[ ${EDDY_PRIVATE_SERVICES:-} == 1 ]]; then
			log "EDDY_PRIVATE_SERVICES=1: not looking at 127.0.0.1:6379"
		else
			log "no usable Redis >= $REDIS_MIN_MAJOR on 127.0.0.1:6379 (${REDIS_ERR:-no answer}); using a private instance"
		fi
		redis_start_private
		REDIS_URL=$REDIS_PRIVATE_URL
	fi
	redis_split "$REDIS_URL"
	REDIS_TEST_URL="$REDIS_BASE/0$REDIS_QUERY"
}

# ---------------------------------------------------------------------------- commands

write_env() {
	local tmp="$ENV_FILE.tmp.$$"
	{
		echo "# Written by scripts/services.sh up; source it: . ./.eddy/env"
		echo "export EDDY_DATABASE_URL=$(shq "$PG_URL")"
		echo "export EDDY_REDIS_URL=$(shq "$REDIS_URL")"
		echo "export EDDY_TEST_DATABASE_URL=$(shq "$PG_TEST_URL")"
		echo "export EDDY_TEST_REDIS_URL=$(shq "$REDIS_TEST_URL")"
	} >"$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

lock() {
	mkdir -p "$EDDY_DIR"
	# Servers and package scripts started while we hold the lock must not inherit fd 9
	# (they would hold the lock forever): every such command below closes it with 9>&-.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$EDDY_DIR/.lock"
		flock -w 300 9 || die "another scripts/services.sh is still running after 300 s"
	fi
}

cmd_up() {
	lock
	ensure_clients
	resolve_postgres
	resolve_redis
	ensure_node
	write_env
	echo "eddy services: PostgreSQL $PG_VERSION at $(redact "$PG_URL") ($PG_HOW); Redis $REDIS_VERSION at $(redact "$REDIS_URL") ($REDIS_HOW); env in .eddy/env"
}

cmd_down() {
	lock
	local did=0
	if pg_private_running; then
		local bindir
		bindir=$(pg_data_bindir)
		log "stopping private PostgreSQL (.eddy/postgres)"
		as_pg "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
		did=1
	fi
	if [[ -f $PG_DEBIAN_MARK ]]; then
		local ver name
		read -r ver name <"$PG_DEBIAN_MARK"
		if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1==v && $2==n && $4=="online" {f=1} END {exit !f}'; then
			log "stopping Debian cluster $ver $name"
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop || die "pg_ctlcluster $ver $name stop failed"
			did=1
		fi
	fi
	local pid
	if pid=$(redis_private_pid); then
		log "stopping private Redis (pid $pid)"
		kill -TERM "$pid" # redis-server fsyncs the AOF and exits
		local i
		for ((i = 0; i < 120; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		! kill -0 "$pid" 2>/dev/null || die "Redis (pid $pid) did not stop within 60 s"
		did=1
	fi
	if [[ $did == 0 ]]; then log "no private instance was running"; fi
}

# The browser tests drive Debian's Chromium (a test tool's own browser download cannot
# work offline): install it when it is missing.
cmd_browser() {
	lock
	if [[ ! -x /usr/bin/chromium ]]; then apt_install chromium; fi
	[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium still missing after installing chromium"
	echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
}

cmd_status() {
	if [[ -f $ENV_FILE ]]; then
		sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' "$ENV_FILE" | grep '^export' || true
	else
		echo "no .eddy/env yet: run scripts/services.sh up"
	fi
	if pg_private_running; then echo "private PostgreSQL: running (.eddy/postgres)"; else echo "private PostgreSQL: not running"; fi
	if [[ -f $PG_DEBIAN_MARK ]]; then echo "Debian fallback cluster: $(cat "$PG_DEBIAN_MARK")"; fi
	if redis_private_pid >/dev/null; then echo "private Redis: running (.eddy/redis)"; else echo "private Redis: not running"; fi
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
browser) cmd_browser ;;
node)
	lock
	ensure_node
	;;
*)
	echo "usage: $0 up|down|status|browser|node" >&2
	exit 2
	;;
esac
