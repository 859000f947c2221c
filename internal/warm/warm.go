package warm

import (
	_ "github.com/cloudflare/circl/sign/mldsa/mldsa87"
	_ "github.com/emmansun/gmsm/sm2"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/miekg/pkcs11"
	_ "modernc.org/sqlite"
)
