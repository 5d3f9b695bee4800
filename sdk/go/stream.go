package one

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
)

// ChunkChoice is one choice's delta in a stream chunk.
type ChunkChoice struct {
	Index int `json:"index"`
	Delta struct {
		Role      string          `json:"role,omitempty"`
		Content   string          `json:"content,omitempty"`
		ToolCalls []ToolCallDelta `json:"tool_calls,omitempty"`
	} `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// ToolCallDelta is a piece of a tool call in a stream.
type ToolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments,omitempty"`
	} `json:"function"`
}

// ChatChunk is one server-sent event of a streamed chat; the last has no choices and carries the receipt.
type ChatChunk struct {
	ID      string        `json:"id"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChatStream is a streamed chat in progress. Iterate with Next (Current, Delta); the answer is gathered so that,
// when the stream ends, Reply holds the receipt from the last chunk checked against the whole answer. In verify
// mode a receipt that does not check out ends the stream with a *ReceiptError (Err, Reply).
type ChatStream struct {
	client  *Client
	resp    *http.Response
	reader  *bufio.Reader
	sent    []byte
	current ChatChunk
	last    map[string]any
	lastRaw []byte
	choices map[int]map[string]any
	reply   *ChatReply
	err     error
	done    bool
}

// ChatStream starts a streamed chat (stream: true is set on the request).
func (c *Client) ChatStream(ctx context.Context, req ChatRequest) *ChatStream {
	s := &ChatStream{client: c, choices: map[int]map[string]any{}}
	s.sent, s.err = body(req, req.Extra, map[string]any{"stream": true})
	if s.err != nil {
		s.done = true
		return s
	}
	s.resp, s.err = c.post(ctx, "/v1/chat/completions", s.sent, true)
	if s.err != nil {
		s.done = true
		return s
	}
	s.reader = bufio.NewReaderSize(s.resp.Body, 64*1024)
	return s
}

// Next reads the next chunk; false at the end of the stream or on an error (Err).
func (s *ChatStream) Next() bool {
	if s.done {
		return false
	}
	for {
		data, err := s.event()
		if err != nil {
			if err == io.EOF {
				s.finish()
			} else {
				s.fail(err)
			}
			return false
		}
		if data == "[DONE]" {
			s.finish()
			return false
		}
		decoded, err := Decode([]byte(data))
		if err != nil {
			s.fail(err)
			return false
		}
		m, _ := decoded.(map[string]any)
		if e, ok := m["error"]; ok && e != nil {
			s.fail(apiError(s.resp.StatusCode, []byte(data)))
			return false
		}
		var chunk ChatChunk
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			s.fail(err)
			return false
		}
		s.gather(m)
		s.current, s.last, s.lastRaw = chunk, m, []byte(data)
		return true
	}
}

// event is the data of the next server-sent event.
func (s *ChatStream) event() (string, error) {
	var lines []string
	for {
		line, err := s.reader.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF && len(lines) > 0 {
				return strings.Join(lines, "\n"), nil
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) > 0 {
				return strings.Join(lines, "\n"), nil
			}
			continue
		}
		if strings.HasPrefix(line, "data:") {
			lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

// gather adds a chunk's deltas to the answer, as the output digest reads it.
func (s *ChatStream) gather(chunk map[string]any) {
	raw, _ := chunk["choices"].([]any)
	for _, item := range raw {
		c, _ := item.(map[string]any)
		index := AnswerOf(c).Index
		choice, ok := s.choices[index]
		if !ok {
			choice = map[string]any{"index": index, "content": nil, "tool_calls": nil}
			s.choices[index] = choice
		}
		delta, _ := c["delta"].(map[string]any)
		if text, _ := delta["content"].(string); text != "" {
			before, _ := choice["content"].(string)
			choice["content"] = before + text
		}
		calls, _ := delta["tool_calls"].([]any)
		for _, raw := range calls {
			call, _ := raw.(map[string]any)
			gathered, _ := choice["tool_calls"].([]any)
			at := AnswerOf(call).Index
			for len(gathered) <= at {
				gathered = append(gathered, map[string]any{"id": nil, "type": "function",
					"function": map[string]any{"name": "", "arguments": ""}})
			}
			choice["tool_calls"] = gathered
			g := gathered[at].(map[string]any)
			if id, _ := call["id"].(string); id != "" {
				g["id"] = id
			}
			if fn, ok := call["function"].(map[string]any); ok {
				gf := g["function"].(map[string]any)
				name, _ := fn["name"].(string)
				args, _ := fn["arguments"].(string)
				gf["name"] = gf["name"].(string) + name
				gf["arguments"] = gf["arguments"].(string) + args
			}
		}
	}
}

func (s *ChatStream) answers() []Answer {
	out := make([]Answer, 0, len(s.choices))
	for i, c := range s.choices {
		out = append(out, Answer{Index: i, Content: c["content"], ToolCalls: c["tool_calls"]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

func (s *ChatStream) fail(err error) {
	s.err, s.done = err, true
	s.resp.Body.Close()
}

// finish checks the receipt of the last chunk against the request sent and the whole answer.
func (s *ChatStream) finish() {
	s.done = true
	s.resp.Body.Close()
	receipt, _ := s.last["receipt"].(map[string]any)
	salt, _ := s.last["request_salt"].(string)
	reply := &ChatReply{Reply: Reply{Receipt: receipt, RequestSalt: salt, Account: AccountOf(s.resp.Header), Sent: s.sent, Body: s.lastRaw},
		ID: s.current.ID, Model: s.current.Model, Usage: s.current.Usage}
	for _, a := range s.answers() {
		msg := Message{Role: "assistant", Content: a.Content}
		if calls, ok := a.ToolCalls.([]any); ok {
			text, _ := json.Marshal(calls)
			_ = json.Unmarshal(text, &msg.ToolCalls)
		}
		reply.Choices = append(reply.Choices, ChatChoice{Index: a.Index, Message: msg})
	}
	output, err := ChatOutputDigest(s.answers())
	if err != nil {
		output = ""
	}
	reply.Verdict, s.err = s.client.Checked(receipt, salt, s.sent, output)
	s.reply = reply
}

// Current is the chunk Next read.
func (s *ChatStream) Current() ChatChunk { return s.current }

// Delta is the text the current chunk added (all its choices).
func (s *ChatStream) Delta() string {
	var b strings.Builder
	for _, c := range s.current.Choices {
		b.WriteString(c.Delta.Content)
	}
	return b.String()
}

// Text is the answer so far (all choices, in index order).
func (s *ChatStream) Text() string {
	var b strings.Builder
	for _, a := range s.answers() {
		text, _ := a.Content.(string)
		b.WriteString(text)
	}
	return b.String()
}

// Err is the error that ended the stream (nil at a clean end whose receipt, in verify mode, checked out).
func (s *ChatStream) Err() error { return s.err }

// Reply reads the rest of the stream and returns the whole answer with its receipt and verdict.
func (s *ChatStream) Reply() (*ChatReply, error) {
	for s.Next() {
	}
	if s.reply == nil && s.err == nil {
		return nil, errors.New("the stream ended without a reply")
	}
	return s.reply, s.err
}

// Close stops reading the stream.
func (s *ChatStream) Close() error {
	if s.resp != nil && !s.done {
		s.done = true
		return s.resp.Body.Close()
	}
	return nil
}
