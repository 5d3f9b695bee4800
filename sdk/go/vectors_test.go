package one

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The shared vectors in sdk/vectors (generated from the Python reference); ONE_VECTORS points elsewhere.
func vectors(t *testing.T, name string) map[string]any {
	t.Helper()
	dir := os.Getenv("ONE_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "vectors")
	}
	text, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("the shared vectors: %v", err)
	}
	v, err := Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

func list(v any) []any         { l, _ := v.([]any); return l }
func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func str(v any) string         { s, _ := v.(string); return s }

func receiptsOf(v any) []Receipt {
	var out []Receipt
	for _, r := range list(v) {
		out = append(out, obj(r))
	}
	return out
}

func TestCanonicalJSONMatchesEveryVector(t *testing.T) {
	cases := list(vectors(t, "canonical.json")["cases"])
	if len(cases) < 10 {
		t.Fatalf("only %d canonical cases", len(cases))
	}
	for _, c := range cases {
		c := obj(c)
		got, err := CanonicalizeJSON([]byte(str(c["json"])))
		if err != nil {
			t.Errorf("%s: %v", c["name"], err)
			continue
		}
		if string(got) != str(c["canonical"]) {
			t.Errorf("%s:\n got %s\nwant %s", c["name"], got, c["canonical"])
		}
	}
}

func TestNumbersAsECMAScriptWritesThem(t *testing.T) {
	for f, want := range map[float64]string{1e21: "1e+21", 1e20: "100000000000000000000", 1e-7: "1e-7", 1e-6: "0.000001",
		5e-324: "5e-324", 0.1: "0.1", -2.25: "-2.25", 1.5e300: "1.5e+300", 2.5e-10: "2.5e-10", 123456789.123: "123456789.123"} {
		if got, _ := FormatNumber(f); got != want {
			t.Errorf("%v: got %s want %s", f, got, want)
		}
	}
}

func TestReceiptVerdictsMatchTheReferenceForEveryCase(t *testing.T) {
	data := vectors(t, "receipts.json")
	cases := list(data["cases"])
	if len(cases) < 25 {
		t.Fatalf("only %d receipt cases", len(cases))
	}
	for _, c := range cases {
		c := obj(c)
		verdicts := VerifyChain(receiptsOf(c["receipts"]), "")
		text, err := json.Marshal(verdicts)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Decode(text)
		want := obj(c["verdict"])["receipts"]
		if !reflect.DeepEqual(got, want) {
			wantText, _ := json.Marshal(want)
			t.Errorf("%s:\n got %s\nwant %s", c["name"], text, wantText)
		}
	}
	pinned := VerifyChain(receiptsOf(obj(cases[0])["receipts"]), str(data["coordinator"]))
	for _, v := range pinned {
		if !v.OK() {
			t.Errorf("valid chain with the coordinator pinned: %s", v)
		}
	}
	other := VerifyChain(receiptsOf(obj(cases[0])["receipts"]), GenesisPrev)
	if ok, ran := other[0].Checks.Get("coordinator_key"); ok || !ran {
		t.Errorf("another pinned key must fail coordinator_key")
	}
}

func TestRequestAndOutputDigests(t *testing.T) {
	data := vectors(t, "receipts.json")
	for _, r := range list(data["requests"]) {
		r := obj(r)
		got, err := RequestDigest(r["body"], str(r["request_salt"]))
		if err != nil || got != str(r["request_digest"]) {
			t.Errorf("request digest: got %s (%v) want %s", got, err, r["request_digest"])
		}
		text, _ := json.Marshal(r["body"]) // the same request as bytes, with Go's own key order and escapes
		if got, _ := RequestDigest(text, str(r["request_salt"])); got != str(r["request_digest"]) {
			t.Errorf("request digest over bytes: got %s", got)
		}
	}
	outputs := list(data["outputs"])
	if len(outputs) != 4 {
		t.Fatalf("%d outputs", len(outputs))
	}
	for _, o := range outputs {
		o := obj(o)
		var got string
		switch str(o["kind"]) {
		case "chat":
			var answers []Answer
			for _, c := range list(o["choices"]) {
				answers = append(answers, AnswerOf(map[string]any{"index": obj(c)["index"], "message": c}))
			}
			got, _ = ChatOutputDigest(answers)
		case "embedding":
			var vectors [][]float64
			for _, v := range list(o["vectors"]) {
				var floats []float64
				for _, x := range list(v) {
					f, _ := x.(json.Number).Float64()
					floats = append(floats, f)
				}
				vectors = append(vectors, floats)
			}
			got = EmbeddingOutputDigest(vectors)
		case "image":
			var pngs [][]byte
			for _, p := range list(o["pngs_hex"]) {
				b, _ := hex.DecodeString(str(p))
				pngs = append(pngs, b)
			}
			got = ImageOutputDigest(pngs)
		}
		if got != str(o["output_digest"]) {
			t.Errorf("%s output digest: got %s want %s", o["kind"], got, o["output_digest"])
		}
	}
}

func TestInclusionProofsForTreesOf1To17Leaves(t *testing.T) {
	data := vectors(t, "proofs.json")
	trees := list(data["trees"])
	if len(trees) != 17 {
		t.Fatalf("%d trees", len(trees))
	}
	for _, tr := range trees {
		tr := obj(tr)
		size, _ := intOf(tr["size"])
		root, _ := hexOf(tr["root"])
		leaves := list(tr["leaves"])
		for _, p := range list(tr["proofs"]) {
			p := obj(p)
			index, _ := intOf(p["leaf_index"])
			var path [][]byte
			for _, x := range list(p["audit_path"]) {
				b, _ := hexOf(x)
				path = append(path, b)
			}
			leaf, _ := hexOf(leaves[index])
			if !VerifyInclusion(index, size, leaf, path, root) {
				t.Errorf("tree %d leaf %d does not verify", size, index)
			}
			if VerifyInclusion(index, size, make([]byte, 32), path, root) {
				t.Errorf("tree %d leaf %d: another leaf verifies", size, index)
			}
		}
	}
	for _, c := range list(data["proofs"]) {
		c := obj(c)
		checks, err := VerifyProof(obj(c["proof"]), "", "")
		if err != nil {
			t.Errorf("%s: %v", c["name"], err)
			continue
		}
		want := map[string]bool{}
		for k, v := range obj(c["checks"]) {
			want[k] = v.(bool)
		}
		if !reflect.DeepEqual(checks.Map(), want) {
			t.Errorf("%s: got %v want %v", c["name"], checks.Map(), want)
		}
	}
	valid := obj(obj(list(data["proofs"])[0])["proof"])
	head := obj(valid["head"])
	checks, _ := VerifyProof(valid, str(head["coordinator"]), "0x"+str(head["root"]))
	if !checks.OK() || len(checks) != 5 {
		t.Errorf("pinned and anchored: %v", checks.Map())
	}
	checks, _ = VerifyProof(valid, "", "0x"+GenesisPrev)
	if ok, _ := checks.Get("anchored"); ok {
		t.Errorf("another anchored root must fail")
	}
}

func TestParseReceiptsReadsEveryForm(t *testing.T) {
	r := `{"seq":0,"hash":"ab"}`
	for _, text := range []string{"[" + r + "]", r, `{"receipts":[` + r + `]}`, r + "\n\n" + r + "\n", `{"receipt":` + r + `,"id":"x"}`} {
		got, err := ParseReceipts([]byte(text))
		if err != nil || len(got) == 0 || str(got[0]["hash"]) != "ab" {
			t.Errorf("%s: %v %v", text, got, err)
		}
	}
	if _, err := ParseReceipts([]byte(`[1]`)); err == nil {
		t.Errorf("a list of numbers is not receipts")
	}
}

// go test -run NONE -bench VerifyChain -benchtime 3s -cpu 1: receipts/s on one core over the valid chain.
func BenchmarkVerifyChain(b *testing.B) {
	text, err := os.ReadFile(filepath.Join("..", "vectors", "receipts.json"))
	if err != nil {
		b.Fatal(err)
	}
	data, _ := Decode(text)
	receipts := receiptsOf(obj(list(obj(data)["cases"])[0])["receipts"])
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, v := range VerifyChain(receipts, "") {
			if !v.OK() {
				b.Fatal(v)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(receipts))/time.Since(start).Seconds(), "receipts/s")
}
