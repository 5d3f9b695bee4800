package one

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// ReceiptVersion is the version of the receipt and attestation forms this package checks.
const ReceiptVersion = 1

// GenesisPrev is the `prev` of the first receipt of a chain (seq 0).
var GenesisPrev = strings.Repeat("0", 64)

var (
	usageKeys           = []string{"input_tokens", "output_tokens", "images"}
	optionalCommitments = []string{"logprobs_digest", "sampling_seed", "tokens_digest"}
	requiredKeys        = []string{"v", "seq", "prev", "ts", "job", "kind", "lane", "account", "model", "request_digest",
		"output_digest", "usage", "charge", "worker", "parent", "coordinator", "hash", "sig"}
)

// Receipt is a receipt as decoded JSON (Decode): kept whole, so its hash covers every field it carries.
type Receipt = map[string]any

// Check is one named check and whether it passed.
type Check struct {
	Name string
	OK   bool
}

// Checks are named checks in the order they ran.
type Checks []Check

// Get says whether the named check ran and passed.
func (c Checks) Get(name string) (ok, ran bool) {
	for _, x := range c {
		if x.Name == name {
			return x.OK, true
		}
	}
	return false, false
}

// OK is true when every check passed.
func (c Checks) OK() bool {
	for _, x := range c {
		if !x.OK {
			return false
		}
	}
	return true
}

// Map is the checks by name.
func (c Checks) Map() map[string]bool {
	m := make(map[string]bool, len(c))
	for _, x := range c {
		m[x.Name] = x.OK
	}
	return m
}

func (c *Checks) set(name string, ok bool) {
	for i := range *c {
		if (*c)[i].Name == name {
			(*c)[i].OK = ok
			return
		}
	}
	*c = append(*c, Check{name, ok})
}

// MarshalJSON writes the checks as an object, in the order they ran.
func (c Checks) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, x.Name)
		if x.OK {
			b.WriteString(":true")
		} else {
			b.WriteString(":false")
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Verdict is what the checks say of one receipt: each check by name, and what failed in words.
type Verdict struct {
	Seq      any // the receipt's seq as it reads (json.Number), nil when it has none
	Hash     string
	Checks   Checks
	Problems []string
}

// OK is true when every check passed and nothing else is wrong.
func (v *Verdict) OK() bool { return v.Checks.OK() && len(v.Problems) == 0 }

func (v *Verdict) fail(check, problem string) {
	v.Checks.set(check, false)
	if problem == "" {
		problem = check + " check failed"
	}
	v.Problems = append(v.Problems, problem)
}

// MarshalJSON writes the verdict as `one verify --json` does: seq, hash, ok, checks, problems.
func (v *Verdict) MarshalJSON() ([]byte, error) {
	problems := v.Problems
	if problems == nil {
		problems = []string{}
	}
	return json.Marshal(struct {
		Seq      any      `json:"seq"`
		Hash     string   `json:"hash"`
		OK       bool     `json:"ok"`
		Checks   Checks   `json:"checks"`
		Problems []string `json:"problems"`
	}{v.Seq, v.Hash, v.OK(), v.Checks, problems})
}

// String is the verify command's line: `seq N <hash16> valid` or `seq N <hash16> INVALID: <problems>`.
func (v *Verdict) String() string {
	h := v.Hash
	if len(h) > 16 {
		h = h[:16]
	}
	if v.OK() {
		return fmt.Sprintf("seq %s %s valid", pyStr(v.Seq), h)
	}
	return fmt.Sprintf("seq %s %s INVALID: %s", pyStr(v.Seq), h, strings.Join(v.Problems, "; "))
}

// ReceiptError is the error a client in verify mode returns for a reply whose receipt does not check out.
type ReceiptError struct {
	Verdict *Verdict
}

func (e *ReceiptError) Error() string {
	return "the receipt does not check out: " + strings.Join(e.Verdict.Problems, "; ")
}

// SHA256Hex is the lowercase hex of data's SHA-256.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ReceiptHash is sha256hex(JCS(receipt without `hash` and `sig`)): also an epoch head's hash.
func ReceiptHash(receipt map[string]any) (string, error) {
	body := make(map[string]any, len(receipt))
	for k, v := range receipt {
		if k != "hash" && k != "sig" {
			body[k] = v
		}
	}
	text, err := Canonical(body)
	if err != nil {
		return "", err
	}
	return SHA256Hex(text), nil
}

// AttestationOf rebuilds the statement the worker signed from the receipt that restates it.
func AttestationOf(receipt map[string]any) (map[string]any, error) {
	usage, ok := receipt["usage"].(map[string]any)
	if !ok {
		return nil, errors.New("usage is not an object")
	}
	u := make(map[string]any, len(usageKeys))
	for _, k := range usageKeys {
		if x, ok := usage[k]; ok {
			u[k] = x
		} else {
			u[k] = json.Number("0")
		}
	}
	att := map[string]any{"v": json.Number(strconv.Itoa(ReceiptVersion)), "job": receipt["job"], "model": receipt["model"],
		"request_digest": receipt["request_digest"], "output_digest": receipt["output_digest"], "usage": u}
	for _, k := range optionalCommitments {
		if x := receipt[k]; x != nil {
			att[k] = x
		}
	}
	return att, nil
}

// Ed25519OK says whether signatureHex is publicHex's signature of message (malformed hex or lengths: false).
func Ed25519OK(publicHex any, message []byte, signatureHex any) bool {
	ps, ok1 := publicHex.(string)
	ss, ok2 := signatureHex.(string)
	if !ok1 || !ok2 {
		return false
	}
	public, err1 := hex.DecodeString(ps)
	sig, err2 := hex.DecodeString(ss)
	if err1 != nil || err2 != nil || len(public) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(public), message, sig)
}

// RequestDigest is what a receipt's request_digest must be for the request sent: sha256hex(salt || JCS(body)).
// body is the request as decoded JSON, or its exact bytes ([]byte or json.RawMessage).
func RequestDigest(body any, requestSalt string) (string, error) {
	salt, err := hex.DecodeString(requestSalt)
	if err != nil {
		return "", fmt.Errorf("request_salt: %w", err)
	}
	var text []byte
	switch b := body.(type) {
	case []byte:
		text, err = CanonicalizeJSON(b)
	case json.RawMessage:
		text, err = CanonicalizeJSON(b)
	default:
		text, err = Canonical(body)
	}
	if err != nil {
		return "", err
	}
	return SHA256Hex(append(salt, text...)), nil
}

// Answer is one choice of a text answer (chat, completion, vision) as the output digest reads it: its index, its
// content (a string, or nil) and its tool calls (nil, or the list as received).
type Answer struct {
	Index     int
	Content   any
	ToolCalls any
}

// ChatOutputDigest is the output digest of a text answer: content and tool calls per choice, in index order.
func ChatOutputDigest(choices []Answer) (string, error) {
	ordered := append([]Answer(nil), choices...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Index < ordered[j].Index })
	list := make([]any, len(ordered))
	for i, c := range ordered {
		list[i] = map[string]any{"content": c.Content, "tool_calls": c.ToolCalls}
	}
	text, err := Canonical(map[string]any{"choices": list})
	if err != nil {
		return "", err
	}
	return SHA256Hex(text), nil
}

// AnswerOf reads one choice of a reply's JSON (a chat `message`, or a completion's `text`).
func AnswerOf(choice map[string]any) Answer {
	index := 0
	if n, ok := choice["index"].(json.Number); ok {
		if i, err := strconv.Atoi(string(n)); err == nil {
			index = i
		}
	}
	if message, ok := choice["message"].(map[string]any); ok {
		return Answer{Index: index, Content: message["content"], ToolCalls: message["tool_calls"]}
	}
	return Answer{Index: index, Content: choice["text"]}
}

// EmbeddingOutputDigest is the output digest of embeddings: the vectors as float32 little-endian, concatenated.
func EmbeddingOutputDigest(vectors [][]float64) string {
	h := sha256.New()
	var buf [4]byte
	for _, vector := range vectors {
		for _, x := range vector {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(float32(x)))
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ImageOutputDigest is the output digest of images: sha256 of the JCS list of each PNG's sha256 hex.
func ImageOutputDigest(pngs [][]byte) string {
	list := make([]any, len(pngs))
	for i, png := range pngs {
		list[i] = SHA256Hex(png)
	}
	text, _ := Canonical(list)
	return SHA256Hex(text)
}

// VerifyReceipt checks one receipt: its hash and both signatures, and, when coordinator is not "", that this
// coordinator key signed it.
func VerifyReceipt(receipt map[string]any, coordinator string) *Verdict {
	if coordinator == "" {
		return verifyReceipt(receipt, nil, false)
	}
	return verifyReceipt(receipt, coordinator, true)
}

func verifyReceipt(receipt map[string]any, pinned any, hasPin bool) *Verdict {
	verdict := &Verdict{Seq: receipt["seq"], Hash: pyStr(receipt["hash"])}
	if _, ok := receipt["hash"]; !ok {
		verdict.Hash = ""
	}
	var missing []string
	for _, k := range requiredKeys {
		if _, ok := receipt[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		verdict.fail("shape", "missing fields: "+strings.Join(missing, ", "))
		return verdict
	}
	malformed := func(err error) *Verdict {
		verdict.fail("shape", "malformed receipt: "+err.Error())
		return verdict
	}
	digest, err := ReceiptHash(receipt)
	if err != nil {
		return malformed(err)
	}
	verdict.Checks.set("hash", jsonEqual(digest, receipt["hash"]))
	hashText, ok := receipt["hash"].(string)
	if !ok {
		return malformed(errors.New("hash is not a string"))
	}
	hashBytes, err := hex.DecodeString(hashText)
	if err != nil {
		return malformed(err)
	}
	verdict.Checks.set("coordinator_sig", Ed25519OK(receipt["coordinator"], hashBytes, receipt["sig"]))
	worker, ok := receipt["worker"].(map[string]any)
	if !ok {
		return malformed(errors.New("worker is not an object"))
	}
	att, err := AttestationOf(receipt)
	if err != nil {
		return malformed(err)
	}
	attText, err := Canonical(att)
	if err != nil {
		return malformed(err)
	}
	if _, ok := worker["id"]; !ok {
		return malformed(errors.New("'id'"))
	}
	if _, ok := worker["sig"]; !ok {
		return malformed(errors.New("'sig'"))
	}
	verdict.Checks.set("worker_sig", Ed25519OK(worker["id"], attText, worker["sig"]))
	if hasPin {
		verdict.Checks.set("coordinator_key", jsonEqual(receipt["coordinator"], pinned))
	}
	for _, c := range verdict.Checks {
		if !c.OK {
			verdict.Problems = append(verdict.Problems, c.Name+" check failed")
		}
	}
	return verdict
}

// seqOf is a receipt's seq when it is an integer.
func seqOf(receipt map[string]any) (int64, bool) {
	n, ok := receipt["seq"].(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// VerifyChain checks each receipt, then the link from each to the one before it, in seq order (the order in the
// file does not matter); one coordinator key signs them all: coordinator when not "", else the first receipt's.
func VerifyChain(receipts []map[string]any, coordinator string) []*Verdict {
	ordered := append([]map[string]any(nil), receipts...)
	key := func(r map[string]any) int64 {
		if s, ok := seqOf(r); ok {
			return s
		}
		return -1
	}
	sort.SliceStable(ordered, func(i, j int) bool { return key(ordered[i]) < key(ordered[j]) })
	var pinned any
	hasPin := false
	if coordinator != "" {
		pinned, hasPin = coordinator, true
	} else if len(ordered) > 0 {
		pinned = ordered[0]["coordinator"]
		hasPin = pinned != nil
	}
	verdicts := make([]*Verdict, 0, len(ordered))
	var previous map[string]any
	for _, receipt := range ordered {
		verdict := verifyReceipt(receipt, pinned, hasPin)
		if previous != nil {
			seq, ok1 := seqOf(receipt)
			before, ok2 := seqOf(previous)
			linked := ok1 && ok2 && seq == before+1 && jsonEqual(receipt["prev"], previous["hash"])
			verdict.Checks.set("chain_link", linked)
			if !linked {
				verdict.Problems = append(verdict.Problems, "does not link to receipt seq "+pyStr(previous["seq"]))
			}
		} else if isZero(receipt["seq"]) {
			linked := jsonEqual(receipt["prev"], GenesisPrev)
			verdict.Checks.set("chain_link", linked)
			if !linked {
				verdict.Problems = append(verdict.Problems, "first receipt must link to the genesis value")
			}
		}
		verdicts = append(verdicts, verdict)
		previous = receipt
	}
	return verdicts
}

// ParseReceipts reads receipts from text: a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API
// replies carrying a `receipt`.
func ParseReceipts(text []byte) ([]map[string]any, error) {
	data, err := Decode(text)
	if err != nil {
		var lines []any
		for _, line := range strings.Split(string(text), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			v, err := Decode([]byte(line))
			if err != nil {
				return nil, err
			}
			lines = append(lines, v)
		}
		data = lines
	}
	if m, ok := data.(map[string]any); ok {
		if list, ok := m["receipts"]; ok {
			data = list
		} else {
			data = []any{m}
		}
		if m2, ok := data.(map[string]any); ok {
			data = []any{m2}
		}
	}
	list, ok := data.([]any)
	if !ok {
		return nil, errors.New("expected receipts as a JSON object, list, or JSON lines")
	}
	out := make([]map[string]any, 0, len(list))
	for _, item := range list {
		r, ok := item.(map[string]any)
		if !ok {
			return nil, errors.New("expected receipts as a JSON object, list, or JSON lines")
		}
		if inner, ok := r["receipt"].(map[string]any); ok {
			r = inner
		}
		out = append(out, r)
	}
	return out, nil
}

// ---- inclusion in a settlement epoch (RFC 9162) ----

func leafHash(receiptHash []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, receiptHash...))
	return h[:]
}

func nodeHash(left, right []byte) []byte {
	b := make([]byte, 0, 65)
	b = append(append(append(b, 1), left...), right...)
	h := sha256.Sum256(b)
	return h[:]
}

// VerifyInclusion is RFC 9162 section 2.1.3.2: does leaf (a receipt hash) sit at index of the tree of size leaves
// with root?
func VerifyInclusion(index, size int64, leaf []byte, path [][]byte, root []byte) bool {
	if index < 0 || index >= size {
		return false
	}
	fn, sn, r := index, size-1, leafHash(leaf)
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && bytes.Equal(r, root)
}

// VerifyProof checks a receipt's proof (GET /one/receipts/{hash}/proof): the signed epoch head (head_hash,
// head_sig), and the audit path to its root (inclusion); with coordinator, the head's key (coordinator_key); with
// anchoredRoot (read from the EpochAnchor contract), that the root is the one anchored on chain (anchored).
func VerifyProof(proof map[string]any, coordinator, anchoredRoot string) (Checks, error) {
	head, ok := proof["head"].(map[string]any)
	if !ok {
		return nil, errors.New("proof has no head")
	}
	var checks Checks
	digest, err := ReceiptHash(head)
	if err != nil {
		return nil, err
	}
	checks.set("head_hash", jsonEqual(digest, head["hash"]))
	headHash, _ := head["hash"].(string)
	hashBytes, err := hex.DecodeString(headHash)
	if err != nil {
		return nil, fmt.Errorf("head hash: %w", err)
	}
	checks.set("head_sig", Ed25519OK(head["coordinator"], hashBytes, head["sig"]))
	included := false
	if numEqual(proof["tree_size"], head["size"]) {
		index, ok1 := intOf(proof["leaf_index"])
		size, ok2 := intOf(proof["tree_size"])
		leaf, err1 := hexOf(proof["receipt"])
		root, err2 := hexOf(head["root"])
		rawPath, ok3 := proof["audit_path"].([]any)
		if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
			return nil, errors.New("malformed proof")
		}
		path := make([][]byte, len(rawPath))
		for i, p := range rawPath {
			if path[i], err = hexOf(p); err != nil {
				return nil, err
			}
		}
		included = VerifyInclusion(index, size, leaf, path, root)
	}
	checks.set("inclusion", included)
	if coordinator != "" {
		checks.set("coordinator_key", jsonEqual(head["coordinator"], coordinator))
	}
	if anchoredRoot != "" {
		checks.set("anchored", jsonEqual(strings.TrimPrefix(anchoredRoot, "0x"), head["root"]))
	}
	return checks, nil
}

// ---- small helpers ----

func hexOf(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("not a hex string")
	}
	return hex.DecodeString(s)
}

func intOf(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

func numEqual(a, b any) bool {
	x, ok1 := a.(json.Number)
	y, ok2 := b.(json.Number)
	if !ok1 || !ok2 {
		return reflect.DeepEqual(a, b)
	}
	f, err1 := strconv.ParseFloat(string(x), 64)
	g, err2 := strconv.ParseFloat(string(y), 64)
	return err1 == nil && err2 == nil && f == g
}

func isZero(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && f == 0
}

// jsonEqual compares decoded JSON values (numbers by value).
func jsonEqual(a, b any) bool {
	if _, ok := a.(json.Number); ok {
		return numEqual(a, b)
	}
	return reflect.DeepEqual(a, b)
}

// pyStr writes a JSON value as the reference's messages do (None, True, False; numbers and strings as they are).
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case json.Number:
		return string(x)
	default:
		text, _ := json.Marshal(x)
		return string(text)
	}
}
