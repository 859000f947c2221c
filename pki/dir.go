package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// InitDir creates a CA in dir: ca.crt, ca.key (mode 0600, sealed when a
// passphrase is given) and the issuance log. It refuses to overwrite an
// existing CA. opts.Store is ignored: the directory is the store.
func InitDir(dir string, cfg CAConfig, passphrase []byte, opts Options) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, wrap(CodeKeyFile, err, "create CA directory")
	}
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, errorf(CodeBadRequest, "%s already exists in the CA directory", f)
		}
	}
	st, err := NewDirStore(dir)
	if err != nil {
		return nil, err
	}
	opts.Store = st
	ca, key, err := NewCA(cfg, opts)
	if err != nil {
		return nil, err
	}
	kb, err := MarshalPrivateKey(key, passphrase)
	if err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(dir, CAKeyFile), kb, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(dir, CACertFile), ca.CertificatePEM(), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// OpenDir loads the CA in dir. The key file must not be readable by group
// or others. passphrase is asked only if the key is sealed.
func OpenDir(dir string, passphrase func() ([]byte, error), opts Options) (*CA, error) {
	cert, err := ReadCertificateFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	key, err := ReadKeyFile(filepath.Join(dir, CAKeyFile), passphrase)
	if err != nil {
		return nil, err
	}
	st, err := NewDirStore(dir)
	if err != nil {
		return nil, err
	}
	opts.Store = st
	return LoadCA(cert, key, opts)
}

// ReadKeyFile reads a private key file written by MarshalPrivateKey,
// refusing one that group or others can read.
func ReadKeyFile(path string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, wrap(CodeKeyFile, err, "key file")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, errorf(CodeKeyFile, "key file %s is accessible to group or others (mode %o): chmod 600", filepath.Base(path), fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, wrap(CodeKeyFile, err, "key file")
	}
	defer wipe(b)
	return ParsePrivateKey(b, passphrase)
}

// ReadCertificateFile reads the first PEM certificate in path.
func ReadCertificateFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, wrap(CodeBadCert, err, "certificate file")
	}
	return ParseCertificatePEM(b)
}

// ParseCertificatePEM reads the first PEM CERTIFICATE block (or DER).
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, errorf(CodeBadCert, "PEM block is %q, not CERTIFICATE", blk.Type)
		}
		der = blk.Bytes
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, wrap(CodeBadCert, err, "parse certificate")
	}
	return c, nil
}

// writeNew writes a file that must not exist yet, through a temporary file
// and rename so a crash leaves no half-written file.
func writeNew(path string, b []byte, mode os.FileMode) error {
	if _, err := os.Stat(path); err == nil {
		return errorf(CodeBadRequest, "%s already exists", filepath.Base(path))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return wrap(CodeKeyFile, err, "stat %s", filepath.Base(path))
	}
	return WriteFileAtomic(path, b, mode)
}

// WriteFileAtomic writes b to path with mode via a synced temporary file and rename.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return wrap(CodeKeyFile, err, "create temporary file")
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return wrap(CodeKeyFile, err, "write %s", filepath.Base(path))
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return wrap(CodeKeyFile, err, "write %s", filepath.Base(path))
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return wrap(CodeKeyFile, err, "rename %s", filepath.Base(path))
	}
	return nil
}
