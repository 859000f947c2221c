// Package seal implements the phix sealed-file format: envelope encryption
// of files and streams of any size for one or more recipients, under either
// algorithm suite (see package suite and docs/formats/sealed-file.md).
//
// A per-file random data key is wrapped for each recipient (a suite public
// key, or a symmetric KEK from kms). A key-committing, MAC-authenticated
// header carries the wraps; the body is a sequence of fixed-size segments,
// each sealed with the suite AEAD under a nonce holding its index and a
// last-segment flag, so corruption, reordering, dropping, duplication,
// truncation and extension are all detected.
//
//	w, err := seal.NewWriter(dst, seal.Options{Suite: s, Recipients: []seal.Recipient{
//		seal.PublicKeyRecipient(hospitalB, 3), seal.KEKRecipient(kekID, 1, kek)}})
//	io.Copy(w, src); err = w.Close()
//
//	r, err := seal.NewReader(src, seal.PrivateKeyIdentity(myKey, 0))
//	io.Copy(dst, r) // untrusted until it returns without error
//
// Both directions stream in constant memory: a Writer holds two or three
// segments, a Reader two, or on long streams a small ring of segments it
// opens in parallel (at most 8 MiB; Close stops its workers early). A Reader
// releases a segment's plaintext only after it authenticates, but learns of
// truncation only at the end: treat output as untrusted until Read returns
// io.EOF. Every error is an *Error with a stable Code and never carries key
// bytes or plaintext.
package seal
