// A compiled baseline for the intake benchmark: the same signature check the receiver does
// (HMAC-SHA256 of the raw body, constant-time compare), then a small JSON answer.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"log"
	"net/http"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	secret := flag.String("secret", "", "webhook secret")
	limit := flag.Int64("limit", 10<<20, "body size limit in bytes")
	flag.Parse()
	http.HandleFunc("/hooks/github", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, *limit+1))
		if err != nil || int64(len(body)) > *limit {
			http.Error(w, `{"error":"body too large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		raw, decodeErr := hex.DecodeString(given)
		mac := hmac.New(sha256.New, []byte(*secret))
		mac.Write(body)
		if !ok || decodeErr != nil || !hmac.Equal(raw, mac.Sum(nil)) {
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ignored"}`))
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
