package blob

import "fmt"

// CheckRange validates a ReadRange request against an object of the given
// size and returns the resolved length. Backends share it so they agree.
func CheckRange(size, off, length int64) (int64, error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("%w: offset %d, size %d", ErrRange, off, size)
	}
	if length < 0 {
		return size - off, nil
	}
	if off+length > size || off+length < off {
		return 0, fmt.Errorf("%w: %d bytes at %d, size %d", ErrRange, length, off, size)
	}
	return length, nil
}
