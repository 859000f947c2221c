// Package transfer is the phix transfer coordinator: the hospital registry,
// policy-checked transfer sessions, tus 1.0 resumable uploads with checksums
// and single-use capabilities, finalize, the receiver's inbox, ranged
// downloads and signed receipts, all behind one http.Handler that answers
// errors as RFC 9457 problem+json with stable codes.
//
// The coordinator never sees plaintext or unwrapped keys: it stores the
// ciphertext the gateways upload (blob.Store), minimal metadata (Store) and
// the delivery notifications (queue.Queue). See docs/coordinator.md and
// docs/api/transfers.md.
package transfer
