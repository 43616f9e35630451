package xts

import (
	"crypto/aes"
	"crypto/cipher"
)

func aesNew(k []byte) (cipher.Block, error) { return aes.NewCipher(k) }

func haveFast() bool { return newRoundKeys(make([]byte, 32)) != nil }
