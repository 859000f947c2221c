package phi

// ForgetIndexKeys drops the cached blind-index keys, so the next seal or
// query derives them under the current blind-index KEK version ($encrypt
// calls it before re-sealing after a rotation).
func (p *Protector) ForgetIndexKeys() { p.blind.dropPrefix("") }
