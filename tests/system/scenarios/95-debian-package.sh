# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# The Debian package (packaging/debian/build.sh) on a Debian container with nothing of the app:
# the README's Deploy block, run as written, installs it with apt and enables layout (b);
# installing alone started nothing; traffic through nginx fails no request, also across
# `app reload` and an upgrade to a newer package (which reloads); `app status` sees every instance; then `apt-get purge` stops everything and
# leaves no file, no unit and no listener behind, with nginx running on a valid configuration.
PORTS=(8080 8082 8083 8084 8085)
deb=$("$REPO/packaging/debian/build.sh" "$APP_BIN" "$WORK/out/deb")
note "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
ct_overlay deb
root=$(ct_path deb)
mkdir -p "$root/root/target/debian"
cp "$deb" "$root/root/target/debian/"
# Debian's default site is in the root filesystem; the Deploy block replaces it.
[ -e "$root/etc/nginx/sites-enabled/default" ] || fail "the root filesystem has no default nginx site"
ct_boot deb

# Installing starts nothing: checked between the package's installation and the enabling, so the
# README block is run in two parts at the line that enables.
run_doc deb README.md deploy-install /root
[ "$(ct_exec deb dpkg-query -W -f '${Status}' app)" = "install ok installed" ] || fail "app is not installed"
running=$(ct_exec deb systemctl list-units --all --plain --no-legend 'app*' | awk '$3 != "inactive"')
[ -z "$running" ] || fail "installing started: $running"
ct_exec deb sh -c '! ss -Hltn | grep -q ":808[0-5] "' || fail "something listens on 808x after installing"
[ "$(prop deb app@8082.service ExecStart | grep -o 'path=[^ ;]*')" = "path=/usr/bin/app" ] ||
    fail "the packaged unit does not run /usr/bin/app: $(prop deb app@8082.service ExecStart)"
docs=$(prop deb app@8082.service Documentation)
# (systemctl show quotes the man: URL for its parentheses)
[ "$docs" = '"man:app(1)" file:/usr/share/doc/app/operations.md' ] || fail "Documentation=$docs"
for f in /usr/share/doc/app/operations.md /usr/share/man/man1/app.1.gz /usr/share/bash-completion/completions/app \
    /usr/share/zsh/vendor-completions/_app /usr/share/fish/vendor_completions.d/app.fish \
    /etc/nginx/conf.d/app.conf /etc/nginx/snippets/app-proxy.conf /etc/nginx/sites-available/app-layout-b; do
    ct_exec deb test -s "$f" || fail "the package has no $f"
done
ct_exec deb zcat /usr/share/man/man1/app.1.gz | grep -q '^\.TH app 1' || fail "app.1.gz is no man page"
# What systemctl help app@8082 opens: man app, found and formatted by man-db.
[ "$(ct_exec deb man -w app)" = /usr/share/man/man1/app.1.gz ] || fail "man -w app: $(ct_exec deb man -w app 2>&1)"
ct_exec deb env MANPAGER=cat man app | grep -q -- "--drain-timeout" || fail "man app does not show the flags"
conffiles=$(ct_exec deb cat /var/lib/dpkg/info/app.conffiles)
grep -qx /etc/nginx/sites-available/app-layout-b <<<"$conffiles" || fail "nginx files are not conffiles: $conffiles"

run_doc deb README.md deploy-enable /root
for port in "${PORTS[@]}"; do
    is_active deb "app@$port.socket" || fail "app@$port.socket is not listening"
done
load_start deb deb --path '/api/randoms?cant=100' --path /info --path /healthz \
    --max-requests 200000 --concurrency 4 --duration 60
wait_served deb 200
# Once traffic flows: a reload of every running instance, as the README says after an upgrade.
run_doc deb README.md deploy-reload /root
wait_served deb 200
# An upgrade (a newer package: the same binary, a new file) moves every running instance onto the
# new file by a reload: same main pids, none left on the replaced (deleted) binary.
newer=$(APP_DEB_VERSION="${deb##*/app_}" && APP_DEB_VERSION=${APP_DEB_VERSION%%_*}+1 \
    "$REPO/packaging/debian/build.sh" "$APP_BIN" "$WORK/out/deb-newer")
cp "$newer" "$root/root/"
pids=$(for port in "${PORTS[@]}"; do main_pid deb "app@$port.service"; done)
ct_exec deb env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/root/$(basename "$newer")" 2>&1 |
    grep -E "Unpacking|Setting up|reloaded" | sed 's/^/    /'
on_new_binary() {
    local port
    for port in "${PORTS[@]}"; do
        [ "$(ct_exec deb readlink "/proc/$(main_pid deb "app@$port.service")/exe")" = /usr/bin/app ] || return 1
    done
}
wait_until 30 "every instance on the upgraded binary" on_new_binary
[ "$(for port in "${PORTS[@]}"; do main_pid deb "app@$port.service"; done)" = "$pids" ] ||
    fail "the upgrade restarted instances instead of reloading them"
note "upgraded to $(ct_exec deb dpkg-query -W -f '${Version}' app): every instance reloaded in place"
wait_served deb 200
load_stop deb
load_wait deb
no_failures deb "through nginx to the packaged instances"
counts=$(upstream_counts deb /api/randoms)
[ "$(wc -l <<<"$counts")" = 4 ] || fail "/api/randoms not spread over 8082..8085: $(oneline "$counts")"
status=$(ct_exec deb app status --json) || fail "app status exits $?"
for port in "${PORTS[@]}"; do
    python3 -c 'import json,sys; r=[r for r in json.load(sys.stdin) if r["port"]==int(sys.argv[1])][0]; assert r["state"]=="active/running" and r["mode"]=="fork" and "problems" not in r, r' \
        "$port" <<<"$status" || fail "app status on app@$port: $status"
done
sent=$SENT

# Purge: every file of the package and everything the docs made goes; nothing runs or listens.
# The package's files (its directories, /lib, /usr/share..., are shared with others).
files=$(ct_exec deb dpkg-query -L app | while read -r f; do if [ ! -d "$root$f" ]; then echo "$f"; fi; done)
[ "$(wc -l <<<"$files")" -ge 20 ] || fail "the package lists only: $files"
ct_exec deb env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q app 2>&1 | tail -n 3 | sed 's/^/    /'
ct_exec deb sh -c '! dpkg-query -W -f "\${Status}" app 2>/dev/null | grep -q installed' || fail "app is still installed"
left=$(while read -r f; do if [ -f "$root$f" ] || [ -L "$root$f" ]; then echo "$f"; fi; done <<<"$files")
[ -z "$left" ] || fail "purge left files: $(oneline "$left")"
for gone in /etc/app /var/lib/app /var/lib/private/app /etc/nginx/sites-enabled/app \
    /etc/systemd/system/sockets.target.wants/app@8080.socket; do
    [ ! -e "$root$gone" ] && [ ! -L "$root$gone" ] || fail "purge left $gone"
done
units=$(ct_exec deb systemctl list-units --all --plain --no-legend 'app*')
[ -z "$units" ] || fail "units left after purge: $units"
# (exit status 1 when nothing matches)
unit_files=$(ct_exec deb systemctl list-unit-files --plain --no-legend 'app*' || true)
[ -z "$unit_files" ] || fail "unit files left after purge: $unit_files"
ct_exec deb sh -c '! ss -Hltn | grep -q ":808[0-5] "' || fail "something still listens on 808x"
ct_exec deb nginx -t 2>/dev/null || fail "nginx's configuration is broken after the purge"
is_active deb nginx.service || fail "nginx stopped"
note "purged: no file, unit or listener left"
report "$sent" 0
