# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Static checks with the container's own systemd (252) and nginx: the units verify cleanly,
# the security exposure of an instance is 2.0 or less, and both nginx layouts, each enabled beside
# Debian's own nginx.conf, pass nginx -t without a warning.
ct_prepare units app-layout-b 8082
ct_boot units

out=$(ct_exec units systemd-analyze verify app@8082.socket app@8082.service app.target app.slice 2>&1)
[ -z "$out" ] || fail "systemd-analyze verify printed:"$'\n'"$out"
note "systemd-analyze verify: clean"

line=$(ct_exec units systemd-analyze security --no-pager app@8082.service | grep 'Overall exposure level')
score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
note "systemd-analyze security app@8082.service: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"
echo "$score" > "$WORK/out/exposure"

for layout in app-layout-a app-layout-b; do
    ct_exec units ln -sfn "../sites-available/$layout" /etc/nginx/sites-enabled/app
    out=$(ct_exec units nginx -t 2>&1) || fail "nginx -t $layout:"$'\n'"$out"
    grep -q '\[warn\]\|\[emerg\]' <<<"$out" && fail "nginx -t $layout warns:"$'\n'"$out"
    note "nginx -t $layout: clean"
done
report 0 0
