package sqlite_test

import (
	"testing"

	"phix/store/storetest"
)

func TestReindexContract(t *testing.T) {
	storetest.RunReindex(t, fileOpener())
}
