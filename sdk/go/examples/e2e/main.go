// Command e2e runs the Go SDK against a live coordinator (the URL is its argument): a streamed chat and an
// embedding in verify mode, then tampered copies that must be rejected. It prints JSON that tests/sdk asserts on.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	one "github.com/one-network/sdk-go"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e URL")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func run(url string) error {
	ctx := context.Background()
	client := one.NewClient(url, one.WithVerify())
	out := map[string]any{}

	stream := client.ChatStream(ctx, one.ChatRequest{Model: "tiny-chat", MaxTokens: 24,
		Messages: []one.Message{one.User("hello from the Go SDK")}})
	deltas := 0
	for stream.Next() {
		if stream.Delta() != "" {
			deltas++
		}
	}
	chat, err := stream.Reply()
	if err != nil {
		return fmt.Errorf("streamed chat: %w", err)
	}
	out["chat"] = map[string]any{"deltas": deltas, "text": stream.Text(), "ok": chat.Verdict.OK(), "checks": chat.Verdict.Checks,
		"kind": chat.Receipt["kind"], "hash": chat.Receipt["hash"], "lane": chat.Account.Lane, "rate_limits": chat.Account.RateLimits}

	embedded, err := client.Embeddings(ctx, one.EmbeddingsRequest{Model: "all-minilm-l6-v2", Input: []string{"a receipt", "a worker"}})
	if err != nil {
		return fmt.Errorf("embeddings: %w", err)
	}
	out["embedding"] = map[string]any{"ok": embedded.Verdict.OK(), "checks": embedded.Verdict.Checks, "count": len(embedded.Data),
		"kind": embedded.Receipt["kind"], "dims": len(embedded.Data[0].Embedding)}

	// Each receipt verifies alone as a chain segment; a copy with its charge changed does not.
	out["chain_ok"] = []bool{allOK(one.VerifyChain([]one.Receipt{chat.Receipt}, "")), allOK(one.VerifyChain([]one.Receipt{embedded.Receipt}, ""))}
	forged, err := tamper(chat.Receipt)
	if err != nil {
		return err
	}
	out["forged"] = map[string]any{"ok": one.VerifyReceipt(forged, "").OK(), "problems": one.VerifyReceipt(forged, "").Problems}

	// The receipt must cover this request and this answer: another body or another answer is caught.
	var sent map[string]any
	_ = json.Unmarshal(chat.Sent, &sent)
	sent["max_tokens"] = 25
	otherBody, _ := json.Marshal(sent)
	answer, _ := one.ChatOutputDigest([]one.Answer{{Index: 0, Content: stream.Text()}})
	otherAnswer, _ := one.ChatOutputDigest([]one.Answer{{Index: 0, Content: "x"}})
	out["other_request"] = client.Check(chat.Receipt, chat.RequestSalt, otherBody, answer).Problems
	out["other_output"] = client.Check(chat.Receipt, chat.RequestSalt, chat.Sent, otherAnswer).Problems
	out["same_again_ok"] = client.Check(chat.Receipt, chat.RequestSalt, chat.Sent, answer).OK()
	_, err = client.Checked(forged, chat.RequestSalt, chat.Sent, answer)
	var receiptErr *one.ReceiptError
	out["verify_mode_error"] = fmt.Sprint(err)
	out["verify_mode_rejects"] = errors.As(err, &receiptErr)

	text, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Println(string(text))
	return nil
}

func allOK(verdicts []*one.Verdict) bool {
	for _, v := range verdicts {
		if !v.OK() {
			return false
		}
	}
	return len(verdicts) > 0
}

// tamper is a deep copy of the receipt with charge.amount raised by one.
func tamper(receipt one.Receipt) (one.Receipt, error) {
	text, err := json.Marshal(receipt)
	if err != nil {
		return nil, err
	}
	decoded, err := one.Decode(text)
	if err != nil {
		return nil, err
	}
	forged := decoded.(map[string]any)
	charge := forged["charge"].(map[string]any)
	amount, err := charge["amount"].(json.Number).Int64()
	if err != nil {
		return nil, err
	}
	charge["amount"] = json.Number(fmt.Sprint(amount + 1))
	return forged, nil
}
