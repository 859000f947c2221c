// Package pkcs11 is the HSM backend of the kms. Each KEK version is an
// AES-256 secret-key object generated inside the token, sensitive and not
// extractable; data keys are wrapped and unwrapped inside the token with
// CKM_AES_GCM (the key bytes pass in and out, the KEK never does).
// Destroying a KEK version destroys the object.
//
// The gm suite: PKCS#11 defines no SM4 mechanism and SoftHSM2 has none, so by
// default a gm KEK on this backend is refused (kms.ErrUnsupported). With
// Config.AllowAESWrapForGM the token's AES KEK wraps the gm suite's SM4 data
// keys; the data itself stays SM4-GCM. See docs/kms.md for why.
package pkcs11

import (
	"os"
	"strconv"

	"phix/kms"
)

// Name is the backend name recorded in blobs.
const Name = "pkcs11"

// DefaultModule is Debian's SoftHSM2 module.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// Environment variables read by ConfigFromEnv.
const (
	EnvModule = "PHIX_PKCS11_MODULE"
	EnvToken  = "PHIX_PKCS11_TOKEN" // token label
	EnvSlot   = "PHIX_PKCS11_SLOT"  // slot id, if no token label
	EnvPIN    = "PHIX_PKCS11_PIN"
)

// Config selects the module, token and credentials.
type Config struct {
	Module     string // path of the PKCS#11 library (default DefaultModule)
	TokenLabel string // select the slot whose token has this label...
	Slot       *uint  // ...or this slot id
	PIN        string // user PIN
	Sessions   int    // session pool size (default 4)
	// AllowAESWrapForGM lets gm-suite KEKs live in the token as AES keys
	// (the HSM lacks SM4). Off by default: a gm deployment must decide this.
	AllowAESWrapForGM bool
}

// ConfigFromEnv reads PHIX_PKCS11_MODULE, _TOKEN, _SLOT and _PIN.
func ConfigFromEnv() (Config, error) {
	c := Config{Module: os.Getenv(EnvModule), TokenLabel: os.Getenv(EnvToken), PIN: os.Getenv(EnvPIN)}
	if s := os.Getenv(EnvSlot); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return Config{}, kms.Errorf(kms.CodeBadInput, "%s must be a slot number", EnvSlot)
		}
		u := uint(n)
		c.Slot = &u
	}
	return c, nil
}
