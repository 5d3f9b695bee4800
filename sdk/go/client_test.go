package one

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeCoordinator answers like a ONE coordinator, with receipts signed over what it received and what it answers;
// forge changes the receipt after signing.
type fakeCoordinator struct {
	coordinator, worker ed25519.PrivateKey
	seq                 int
	forge               func(Receipt)
}

func newFake() *fakeCoordinator {
	key := func(name string) ed25519.PrivateKey {
		seed := sha256.Sum256([]byte(name))
		return ed25519.NewKeyFromSeed(seed[:])
	}
	return &fakeCoordinator{coordinator: key("coordinator"), worker: key("worker")}
}

func (f *fakeCoordinator) receipt(t *testing.T, kind string, sent []byte, output string) (Receipt, string) {
	salt := fmt.Sprintf("%032x", f.seq+1)
	digest, err := RequestDigest(sent, salt)
	if err != nil {
		t.Fatal(err)
	}
	n := func(i int) json.Number { return json.Number(fmt.Sprint(i)) }
	r := Receipt{"v": n(1), "seq": n(f.seq), "prev": GenesisPrev, "ts": "2026-11-26T12:00:00.000Z", "job": fmt.Sprint("job-", f.seq),
		"kind": kind, "lane": "included", "account": strings.Repeat("ab", 32), "model": "m", "request_digest": digest,
		"output_digest": output, "usage": map[string]any{"input_tokens": n(3), "output_tokens": n(4), "images": n(0)},
		"charge": map[string]any{"unit": "credit", "amount": n(7)}, "parent": nil,
		"coordinator": hex.EncodeToString(f.coordinator.Public().(ed25519.PublicKey))}
	att, _ := AttestationOf(r)
	attText, _ := Canonical(att)
	r["worker"] = map[string]any{"id": hex.EncodeToString(f.worker.Public().(ed25519.PublicKey)),
		"sig": hex.EncodeToString(ed25519.Sign(f.worker, attText))}
	h, _ := ReceiptHash(r)
	hb, _ := hex.DecodeString(h)
	r["hash"], r["sig"] = h, hex.EncodeToString(ed25519.Sign(f.coordinator, hb))
	f.seq++
	if f.forge != nil {
		f.forge(r)
	}
	return r, salt
}

func (f *fakeCoordinator) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sent, _ := io.ReadAll(req.Body)
		var body map[string]any
		_ = json.Unmarshal(sent, &body)
		w.Header().Set("x-one-lane", "included")
		w.Header().Set("x-one-balance", "1234")
		w.Header().Set("x-one-balance-unit", "credit")
		w.Header().Set("x-ratelimit-remaining-requests", "59")
		switch req.URL.Path {
		case "/v1/chat/completions":
			calls := []any{map[string]any{"id": "c1", "type": "function", "function": map[string]any{"name": "f", "arguments": `{"x":1}`}}}
			output, _ := ChatOutputDigest([]Answer{{Index: 0, Content: "Hello, wörld ✓"}, {Index: 1, ToolCalls: calls}})
			receipt, salt := f.receipt(t, "chat", sent, output)
			if body["stream"] == true {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, chunk := range []string{
					`{"id":"x","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello, "}}]}`,
					`{"id":"x","model":"m","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}}]}`,
					`{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"wörld ✓"}}]}`,
					`{"id":"x","model":"m","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}`,
				} {
					fmt.Fprintf(w, "data: %s\n\n", chunk)
				}
				last, _ := json.Marshal(map[string]any{"id": "x", "model": "m", "choices": []any{}, "receipt": receipt, "request_salt": salt})
				fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", last)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "x", "model": "m", "choices": []any{
				map[string]any{"index": 1, "message": map[string]any{"role": "assistant", "content": nil, "tool_calls": calls}, "finish_reason": "tool_calls"},
				map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": "Hello, wörld ✓"}, "finish_reason": "stop"},
			}, "receipt": receipt, "request_salt": salt})
		case "/v1/embeddings":
			vectors := [][]float64{{0.1, -0.2}, {0.3, 65504}}
			receipt, salt := f.receipt(t, "embedding", sent, EmbeddingOutputDigest(vectors))
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{"index": 1, "embedding": vectors[1]},
				map[string]any{"index": 0, "embedding": vectors[0]}}, "receipt": receipt, "request_salt": salt})
		case "/v1/images/generations":
			png := []byte("\x89PNG fake")
			receipt, salt := f.receipt(t, "image", sent, ImageOutputDigest([][]byte{png}))
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{"b64_json": base64.StdEncoding.EncodeToString(png)}},
				"receipt": receipt, "request_salt": salt})
		default:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"error":{"message":"no such route","type":"invalid_request_error"}}`))
		}
	})
}

func TestTheClientChecksEveryKindOfReply(t *testing.T) {
	fake := newFake()
	server := httptest.NewServer(fake.handler(t))
	defer server.Close()
	client := NewClient(server.URL, WithVerify(), WithCoordinator(hex.EncodeToString(fake.coordinator.Public().(ed25519.PublicKey))))
	ctx := context.Background()
	want := map[string]bool{"hash": true, "coordinator_sig": true, "worker_sig": true, "coordinator_key": true, "request": true, "output": true}

	temperature := 0.7
	chat, err := client.Chat(ctx, ChatRequest{Model: "m", Messages: []Message{User("Grüße <&> 😀")}, Temperature: &temperature,
		Tools: []Tool{Function("f", "a function", map[string]any{"type": "object"})}, Extra: map[string]any{"user": "me"}})
	if err != nil || !chat.Verdict.OK() || fmt.Sprint(chat.Verdict.Checks.Map()) != fmt.Sprint(want) {
		t.Fatalf("chat: %v %v", err, chat)
	}
	if chat.Text() != "" || chat.Choices[1].Message.Text() != "Hello, wörld ✓" || chat.Account.Lane != "included" ||
		*chat.Account.Balance != 1234 || chat.Account.Unit != "credit" || chat.Account.RateLimits["x-ratelimit-remaining-requests"] != "59" {
		t.Errorf("chat reply: %+v", chat)
	}

	stream := client.ChatStream(ctx, ChatRequest{Model: "m", Messages: []Message{User("hi")}})
	var deltas []string
	for stream.Next() {
		deltas = append(deltas, stream.Delta())
	}
	reply, err := stream.Reply()
	if err != nil || !reply.Verdict.OK() || strings.Join(deltas, "") != "Hello, wörld ✓" || stream.Text() != "Hello, wörld ✓" {
		t.Fatalf("stream: %v %v %q", err, reply, deltas)
	}
	if calls := reply.Choices[1].Message.ToolCalls; len(calls) != 1 || calls[0].Function.Arguments != `{"x":1}` {
		t.Errorf("gathered tool calls: %+v", reply.Choices)
	}
	if !strings.Contains(string(reply.Sent), `"stream":true`) {
		t.Errorf("sent: %s", reply.Sent)
	}

	embedded, err := client.Embeddings(ctx, EmbeddingsRequest{Model: "m", Input: []string{"a", "b"}})
	if err != nil || !embedded.Verdict.OK() || len(embedded.Data) != 2 || !strings.Contains(string(embedded.Sent), `"encoding_format":"float"`) {
		t.Fatalf("embeddings: %v %+v", err, embedded)
	}
	images, err := client.Images(ctx, ImagesRequest{Model: "m", Prompt: "a cat"})
	if err != nil || !images.Verdict.OK() || len(images.Data) != 1 {
		t.Fatalf("images: %v %+v", err, images)
	}

	// A forged receipt: verify mode returns the reply and a *ReceiptError; without it, the verdict says so.
	fake.forge = func(r Receipt) { r["charge"].(map[string]any)["amount"] = json.Number("8") }
	_, err = client.Embeddings(ctx, EmbeddingsRequest{Model: "m", Input: "a"})
	var receiptErr *ReceiptError
	if !errors.As(err, &receiptErr) || !strings.Contains(err.Error(), "hash check failed") {
		t.Errorf("forged embeddings: %v", err)
	}
	stream = client.ChatStream(ctx, ChatRequest{Model: "m", Messages: []Message{User("hi")}})
	for stream.Next() {
	}
	if !errors.As(stream.Err(), &receiptErr) {
		t.Errorf("forged stream: %v", stream.Err())
	}
	client.Verify = false
	chat, err = client.Chat(ctx, ChatRequest{Model: "m", Messages: []Message{User("hi")}})
	if err != nil || chat.Verdict.OK() {
		t.Errorf("forged chat without verify mode: %v %v", err, chat.Verdict)
	}
	// Another request or another answer than the receipt covers.
	fake.forge = nil
	chat, _ = client.Chat(ctx, ChatRequest{Model: "m", Messages: []Message{User("hi")}})
	if v := client.Check(chat.Receipt, chat.RequestSalt, []byte(`{"model":"m"}`), "00"); v.OK() || len(v.Problems) != 2 {
		t.Errorf("another request and answer: %v", v.Problems)
	}
	_, err = client.Chat(ctx, ChatRequest{Model: "m"})
	if err != nil {
		t.Errorf("%v", err)
	}
	client.BaseURL += "/nowhere"
	var apiErr *APIError
	if _, err = client.Chat(ctx, ChatRequest{Model: "m"}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("api error: %v", err)
	}
}
