package deid

import "encoding/base32"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)
