#!/bin/sh
# keepalived vrrp_script: exits 0 while the local l4lb answers GET /readyz
# with 200 at ADMIN (ADDR:PORT). Used by keepalived.conf.tmpl.
exec curl -fsS -m 1 -o /dev/null "http://$1/readyz"
