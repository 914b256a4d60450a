#!/bin/sh
# make-certs.sh DIR: a throwaway PKI for the TLS tests, in DIR (made if missing):
#   ca.crt/ca.key              the test CA
#   server.crt/server.key      signed by it, for localhost, 127.0.0.1 and ::1
#   client.crt/client.key      a client certificate signed by it (mutual TLS)
#   other-ca.crt/other-ca.key  an unrelated CA
#   other-client.crt/.key      a client certificate signed by the unrelated CA
# EC P-256 keys (fast to make); valid for 2 days. Needs the openssl tool.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
ca() { # NAME CN
    openssl req -x509 $ec -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" 2>/dev/null
}
leaf() { # NAME CA CN EXTFILE
    openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
        -out "$1.crt" -extfile "$4" 2>/dev/null
    rm -f "$1.csr"
}
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
ca ca "redis-lock test CA"
ca other-ca "an unrelated CA"
leaf server ca localhost server.ext
leaf client ca "redis-lock test client" client.ext
leaf other-client other-ca "a client of the unrelated CA" client.ext
chmod 600 ./*.key
