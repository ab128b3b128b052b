"""Throw-away X.509 material for the TLS policy tests, made with the real
openssl command line: CAs, intermediates, server and client certificates
(optionally naming an OCSP responder in their AIA extension).

Every file lives under the directory given to Pki(); nothing is committed.
"""
import os
import subprocess


def run(*args):
    subprocess.run(list(args), check=True, capture_output=True)


class Pki:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.serial = 1000

    def path(self, name, ext):
        return os.path.join(self.dir, "%s.%s" % (name, ext))

    def _key(self, name):
        key = self.path(name, "key")
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", key)
        return key

    def ca(self, name, issuer=None):
        """A CA (self-signed, or an intermediate signed by issuer)."""
        key = self._key(name)
        crt = self.path(name, "crt")
        ext = self.path(name, "ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n")
        if issuer is None:
            run("openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=" + name, "-days",
                "3", "-out", crt, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign")
        else:
            self._sign(name, key, crt, issuer, ext)
        return name

    def _sign(self, name, key, crt, issuer, ext, days="2"):
        csr = self.path(name, "csr")
        run("openssl", "req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr)
        self.serial += 1
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.path(issuer, "crt"), "-CAkey",
            self.path(issuer, "key"), "-set_serial", str(self.serial), "-days", days, "-out",
            crt, "-extfile", ext)

    def leaf(self, name, issuer, dns=(), client=False, server=True, ocsp_url=None, ip=()):
        """A leaf certificate signed by issuer; returns name. Files:
        NAME.crt (leaf only), NAME.key, NAME.chain (leaf + issuer)."""
        key = self._key(name)
        crt = self.path(name, "crt")
        ext = self.path(name, "ext")
        usage = []
        if server:
            usage.append("serverAuth")
        if client:
            usage.append("clientAuth")
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
                 "extendedKeyUsage=" + ",".join(usage)]
        sans = ["DNS:" + d for d in dns] + ["IP:" + i for i in ip]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        if ocsp_url:
            lines.append("authorityInfoAccess=OCSP;URI:" + ocsp_url)
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._sign(name, key, crt, issuer, ext)
        with open(self.path(name, "chain"), "w") as out:
            out.write(self.pem(name) + self.pem(issuer))
        return name

    def ocsp_signer(self, name, issuer):
        """A delegated OCSP responder certificate (extendedKeyUsage OCSPSigning)."""
        key = self._key(name)
        crt = self.path(name, "crt")
        ext = self.path(name, "ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=OCSPSigning\n")
        self._sign(name, key, crt, issuer, ext)
        return name

    def pem(self, name, ext="crt"):
        with open(self.path(name, ext)) as f:
            return f.read()
