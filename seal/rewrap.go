package seal

import (
	"bufio"
	"fmt"
	"io"

	"phix/suite"
)

// Rewrap copies a sealed stream from src to dst with a new recipient list,
// without re-encrypting the body: the data key is unwrapped with ids and
// wrapped again for recipients, under the same salt, nonce prefix and
// segment size, and the header gets a new MAC. This is how a KEK rotation
// or a delivery to another hospital avoids touching gigabytes of
// ciphertext. The header is authenticated before anything is written; the
// body is copied as is and is authenticated by whoever finally opens it
// (Rewrap has no reason to decrypt it). It returns the bytes written.
func Rewrap(dst io.Writer, src io.Reader, recipients []Recipient, ids ...Identity) (int64, error) {
	br := bufio.NewReaderSize(src, 4096)
	h, dataKey, _, _, err := openHeaderKey(br, ids)
	if err != nil {
		return 0, err
	}
	defer suite.Wipe(dataKey)
	hdr, _, err := buildHeader(h.Suite, h.SegmentSize, h.Salt, h.NoncePrefix, dataKey, recipients)
	if err != nil {
		return 0, err
	}
	n, err := dst.Write(hdr)
	if err != nil {
		return int64(n), fmt.Errorf("seal: writing header: %w", err)
	}
	m, err := io.Copy(dst, br)
	return int64(n) + m, err
}
