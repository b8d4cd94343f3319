#!/bin/sh
# entrysig_pki.sh DIR: the certificates tests/unit/entrysig_test.c checks
# signed entries against, made with the openssl tool as meshctl pki lays
# them out (URI:mailmesh:<kind>:<name>): ca.pem; Ed25519 masters M-A and
# M-B and R-A (revoked, in crl.pem); a server S-A (P-256); a master
# X-A that a stranger CA signed (stranger/ca.pem).
set -eu
d=$1
mkdir -p "$d/stranger"
cd "$d"
cat > ca.cnf <<'CNF'
[ca]
default_ca = lab
[lab]
database = index.txt
default_md = sha256
default_crl_days = 3650
CNF
: > index.txt
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 30 -subj "/O=Lab/CN=Lab mailmesh CA" -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger/ca.key \
  -out stranger/ca.pem -days 30 -subj "/O=Lab/CN=Lab mailmesh CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name kind keytype cadir
  if [ "$3" = ed25519 ]; then q openssl genpkey -algorithm ed25519 -out "$1.key"
  else q openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; fi
  q openssl req -new -key "$1.key" -out "$1.csr" -subj "/O=Lab/OU=$2/CN=$1" \
    -addext "subjectAltName=URI:mailmesh:$2:$1" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature"
  q openssl x509 -req -in "$1.csr" -CA "$4/ca.pem" -CAkey "$4/ca.key" -CAcreateserial \
    -out "$1.pem" -days 30 -copy_extensions copy
}
leaf M-A master ed25519 .
leaf M-B master ed25519 .
leaf R-A master ed25519 .
leaf S-A server ec .
leaf X-A master ed25519 stranger
q openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -revoke R-A.pem
q openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -gencrl -out crl.pem
