package one

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Client talks to one ONE coordinator's OpenAI-compatible API. Every reply comes back with its receipt, request
// salt, account headers and the verdict of the checks; in verify mode (WithVerify) a receipt that does not check
// out is returned as a *ReceiptError (with the reply, so it can still be inspected).
type Client struct {
	BaseURL     string       // the coordinator, e.g. http://127.0.0.1:3000 (without /v1)
	APIKey      string       // sent as a bearer token when not ""
	HTTP        *http.Client // the transport
	Verify      bool         // every reply's receipt checked on arrival; a failure is an error
	Coordinator string       // pin the coordinator's public key (hex) receipts must be signed with
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sets the API key (a bearer token); open coordinators need none.
func WithAPIKey(key string) Option { return func(c *Client) { c.APIKey = key } }

// WithVerify turns on verify-every-reply: a receipt that does not check out is an error.
func WithVerify() Option { return func(c *Client) { c.Verify = true } }

// WithCoordinator pins the coordinator's public key (hex).
func WithCoordinator(publicHex string) Option { return func(c *Client) { c.Coordinator = publicHex } }

// WithHTTPClient sets the http.Client used.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.HTTP = h } }

// NewClient is a client of the coordinator at baseURL.
func NewClient(baseURL string, opts ...Option) *Client {
	c := &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 120 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Account is what a reply's x-one-* headers say: the lane it ran on, the balance left and its unit, when
// Included credits refresh (seconds), and the x-ratelimit-* headers.
type Account struct {
	Lane       string
	Balance    *int64
	Unit       string
	RefreshIn  *int64
	RateLimits map[string]string
}

// AccountOf reads the account headers of a reply.
func AccountOf(h http.Header) Account {
	number := func(name string) *int64 {
		if n, err := strconv.ParseInt(h.Get(name), 10, 64); err == nil {
			return &n
		}
		return nil
	}
	a := Account{Lane: h.Get("x-one-lane"), Balance: number("x-one-balance"), Unit: h.Get("x-one-balance-unit"),
		RefreshIn: number("x-one-refresh-in"), RateLimits: map[string]string{}}
	for k, v := range h {
		if k := strings.ToLower(k); strings.HasPrefix(k, "x-ratelimit-") && len(v) > 0 {
			a.RateLimits[k] = v[0]
		}
	}
	return a
}

// Reply is what every call returns beside the answer: the receipt, the request salt, the account headers, the
// verdict of the checks, the exact JSON sent (what the request digest covers) and the reply's JSON as received
// (a stream's last chunk).
type Reply struct {
	Receipt     Receipt  `json:"-"`
	RequestSalt string   `json:"-"`
	Account     Account  `json:"-"`
	Verdict     *Verdict `json:"-"`
	Sent        []byte   `json:"-"`
	Body        []byte   `json:"-"`
}

// APIError is an error reply of the API.
type APIError struct {
	Status  int
	Message string
	Type    string
	Code    any
}

func (e *APIError) Error() string {
	return fmt.Sprintf("ONE API error %d (%s): %s", e.Status, e.Type, e.Message)
}

func apiError(status int, body []byte) *APIError {
	var parsed struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Message != "" {
		return &APIError{Status: status, Message: parsed.Error.Message, Type: parsed.Error.Type, Code: parsed.Error.Code}
	}
	return &APIError{Status: status, Message: strings.TrimSpace(string(body)), Type: "http_error"}
}

// ---- requests ----

// Message is a chat message. Content is a string, a list of content parts (vision), or nil.
type Message struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Text is the message's content when it is text.
func (m Message) Text() string {
	s, _ := m.Content.(string)
	return s
}

// User is a user message.
func User(content string) Message { return Message{Role: "user", Content: content} }

// System is a system message.
func System(content string) Message { return Message{Role: "system", Content: content} }

// Tool is a function the model may call.
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a callable function; Parameters is its JSON schema.
type FunctionDef struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Parameters  any    `json:"parameters,omitempty"`
}

// Function is a tool of type function.
func Function(name, description string, parameters any) Tool {
	return Tool{Type: "function", Function: FunctionDef{name, description, parameters}}
}

// ToolCall is a call the model made.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is a tool call's function and its JSON arguments.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// JSONSchema is a response_format asking for output that follows schema.
func JSONSchema(name string, schema any) map[string]any {
	return map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": name, "schema": schema, "strict": true}}
}

// ChatRequest is POST /v1/chat/completions. Extra holds any other field, sent as given.
type ChatRequest struct {
	Model          string         `json:"model"`
	Messages       []Message      `json:"messages"`
	MaxTokens      int            `json:"max_tokens,omitempty"`
	Temperature    *float64       `json:"temperature,omitempty"`
	TopP           *float64       `json:"top_p,omitempty"`
	N              int            `json:"n,omitempty"`
	Seed           *int64         `json:"seed,omitempty"`
	Stop           any            `json:"stop,omitempty"`
	Tools          []Tool         `json:"tools,omitempty"`
	ToolChoice     any            `json:"tool_choice,omitempty"`
	ResponseFormat any            `json:"response_format,omitempty"`
	Extra          map[string]any `json:"-"`
}

// CompletionRequest is POST /v1/completions.
type CompletionRequest struct {
	Model       string         `json:"model"`
	Prompt      any            `json:"prompt"`
	MaxTokens   int            `json:"max_tokens,omitempty"`
	Temperature *float64       `json:"temperature,omitempty"`
	Seed        *int64         `json:"seed,omitempty"`
	Stop        any            `json:"stop,omitempty"`
	Extra       map[string]any `json:"-"`
}

// EmbeddingsRequest is POST /v1/embeddings (always as float vectors: the receipt's digest is over their float32
// values).
type EmbeddingsRequest struct {
	Model      string         `json:"model"`
	Input      any            `json:"input"`
	Dimensions int            `json:"dimensions,omitempty"`
	Extra      map[string]any `json:"-"`
}

// ImagesRequest is POST /v1/images/generations (always as b64_json: the receipt's digest is over the PNG bytes).
type ImagesRequest struct {
	Model  string         `json:"model"`
	Prompt string         `json:"prompt"`
	N      int            `json:"n,omitempty"`
	Size   string         `json:"size,omitempty"`
	Extra  map[string]any `json:"-"`
}

// body is the exact JSON a request sends: the struct's fields, then Extra, then what the call sets.
func body(request any, extra map[string]any, set map[string]any) ([]byte, error) {
	text, err := json.Marshal(request)
	if err != nil || (len(extra) == 0 && len(set) == 0) {
		return text, err
	}
	decoded, err := Decode(text)
	if err != nil {
		return nil, err
	}
	m := decoded.(map[string]any)
	for k, v := range extra {
		m[k] = v
	}
	for k, v := range set {
		if _, given := m[k]; !given || k == "stream" {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

func (c *Client) post(ctx context.Context, path string, sent []byte, stream bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(sent))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		text, _ := io.ReadAll(resp.Body)
		return nil, apiError(resp.StatusCode, text)
	}
	return resp, nil
}

// call sends one non-streamed request and reads the reply into out; the output digest is computed from the
// reply's JSON exactly as it arrived.
func (c *Client) call(ctx context.Context, path string, sent []byte, out any, digest func(map[string]any) (string, error)) (Reply, error) {
	resp, err := c.post(ctx, path, sent, false)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{}, err
	}
	decoded, err := Decode(text)
	if err != nil {
		return Reply{}, fmt.Errorf("reply is not JSON: %w", err)
	}
	if err := json.Unmarshal(text, out); err != nil {
		return Reply{}, fmt.Errorf("reply: %w", err)
	}
	m, _ := decoded.(map[string]any)
	receipt, _ := m["receipt"].(map[string]any)
	salt, _ := m["request_salt"].(string)
	reply := Reply{Receipt: receipt, RequestSalt: salt, Account: AccountOf(resp.Header), Sent: sent, Body: text}
	output, err := digest(m)
	if err != nil {
		output = "" // an answer that cannot be read fails the output check
	}
	var verdictErr error
	reply.Verdict, verdictErr = c.Checked(receipt, salt, sent, output)
	return reply, verdictErr
}

// Check is the receipt's own checks (hash, both signatures, the pinned coordinator), then that it covers this
// request (request_digest over the exact JSON sent, with the salt) and this output (output_digest).
func (c *Client) Check(receipt Receipt, requestSalt string, sent []byte, outputDigest string) *Verdict {
	if len(receipt) == 0 {
		v := &Verdict{}
		v.fail("receipt", "the reply carries no receipt")
		return v
	}
	v := VerifyReceipt(receipt, c.Coordinator)
	if requestSalt == "" || sent == nil {
		v.fail("request", "no request salt or request body to check the request digest against")
	} else {
		digest, err := RequestDigest(sent, requestSalt)
		ok := err == nil && jsonEqual(digest, receipt["request_digest"])
		v.Checks.set("request", ok)
		if !ok {
			v.Problems = append(v.Problems, "request_digest does not match the request sent")
		}
	}
	ok := jsonEqual(outputDigest, receipt["output_digest"])
	v.Checks.set("output", ok)
	if !ok {
		v.Problems = append(v.Problems, "output_digest does not match the output received")
	}
	return v
}

// Checked is Check, and in verify mode a *ReceiptError when the verdict is not OK.
func (c *Client) Checked(receipt Receipt, requestSalt string, sent []byte, outputDigest string) (*Verdict, error) {
	v := c.Check(receipt, requestSalt, sent, outputDigest)
	if c.Verify && !v.OK() {
		return v, &ReceiptError{Verdict: v}
	}
	return v, nil
}

// ---- chat ----

// Usage is a reply's token counts.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatChoice is one choice of a chat reply.
type ChatChoice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// ChatReply is a chat completion with its receipt (Reply).
type ChatReply struct {
	Reply
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage"`
}

// Text is the first choice's content.
func (r *ChatReply) Text() string {
	if len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Text()
}

func textDigest(m map[string]any) (string, error) {
	raw, _ := m["choices"].([]any)
	answers := make([]Answer, 0, len(raw))
	for _, c := range raw {
		if choice, ok := c.(map[string]any); ok {
			answers = append(answers, AnswerOf(choice))
		}
	}
	return ChatOutputDigest(answers)
}

// Chat is a chat completion, not streamed (tools, ToolChoice, ResponseFormat with JSONSchema and the rest).
func (c *Client) Chat(ctx context.Context, req ChatRequest) (*ChatReply, error) {
	sent, err := body(req, req.Extra, nil)
	if err != nil {
		return nil, err
	}
	out := &ChatReply{}
	out.Reply, err = c.call(ctx, "/v1/chat/completions", sent, out, textDigest)
	if out.Reply.Body == nil {
		return nil, err
	}
	return out, err
}

// CompletionChoice is one choice of a completion.
type CompletionChoice struct {
	Index        int    `json:"index"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
}

// CompletionReply is a text completion with its receipt.
type CompletionReply struct {
	Reply
	ID      string             `json:"id"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage"`
}

// Completion is a text completion (POST /v1/completions), not streamed.
func (c *Client) Completion(ctx context.Context, req CompletionRequest) (*CompletionReply, error) {
	sent, err := body(req, req.Extra, nil)
	if err != nil {
		return nil, err
	}
	out := &CompletionReply{}
	out.Reply, err = c.call(ctx, "/v1/completions", sent, out, textDigest)
	if out.Reply.Body == nil {
		return nil, err
	}
	return out, err
}

// ---- embeddings and images ----

// Embedding is one input's vector.
type Embedding struct {
	Index     int       `json:"index"`
	Embedding []float64 `json:"embedding"`
}

// EmbeddingsReply is an embedding list with its receipt.
type EmbeddingsReply struct {
	Reply
	Model string      `json:"model"`
	Data  []Embedding `json:"data"`
}

// Embeddings embeds the inputs (POST /v1/embeddings, float vectors).
func (c *Client) Embeddings(ctx context.Context, req EmbeddingsRequest) (*EmbeddingsReply, error) {
	sent, err := body(req, req.Extra, map[string]any{"encoding_format": "float"})
	if err != nil {
		return nil, err
	}
	out := &EmbeddingsReply{}
	out.Reply, err = c.call(ctx, "/v1/embeddings", sent, out, func(m map[string]any) (string, error) {
		var parsed struct {
			Data []Embedding `json:"data"`
		}
		text, _ := json.Marshal(m)
		if err := json.Unmarshal(text, &parsed); err != nil {
			return "", err
		}
		sort.SliceStable(parsed.Data, func(i, j int) bool { return parsed.Data[i].Index < parsed.Data[j].Index })
		vectors := make([][]float64, len(parsed.Data))
		for i, e := range parsed.Data {
			vectors[i] = e.Embedding
		}
		return EmbeddingOutputDigest(vectors), nil
	})
	if out.Reply.Body == nil {
		return nil, err
	}
	return out, err
}

// Image is one generated image.
type Image struct {
	B64JSON string `json:"b64_json"`
}

// PNG is the image's bytes.
func (i Image) PNG() ([]byte, error) { return base64.StdEncoding.DecodeString(i.B64JSON) }

// ImagesReply is generated images with their receipt.
type ImagesReply struct {
	Reply
	Data []Image `json:"data"`
}

// Images generates images (POST /v1/images/generations, as b64_json).
func (c *Client) Images(ctx context.Context, req ImagesRequest) (*ImagesReply, error) {
	sent, err := body(req, req.Extra, map[string]any{"response_format": "b64_json"})
	if err != nil {
		return nil, err
	}
	out := &ImagesReply{}
	out.Reply, err = c.call(ctx, "/v1/images/generations", sent, out, func(m map[string]any) (string, error) {
		data, _ := m["data"].([]any)
		pngs := make([][]byte, 0, len(data))
		for _, item := range data {
			im, _ := item.(map[string]any)
			s, _ := im["b64_json"].(string)
			png, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", err
			}
			pngs = append(pngs, png)
		}
		return ImageOutputDigest(pngs), nil
	})
	if out.Reply.Body == nil {
		return nil, err
	}
	return out, err
}
