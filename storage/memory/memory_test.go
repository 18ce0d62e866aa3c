package memory_test

import (
	"testing"

	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, memory.New())
}
