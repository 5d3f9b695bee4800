// Command verify checks a file of ONE receipts (a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API
// replies carrying one): each receipt and the links between consecutive ones. It prints a verdict per receipt and
// exits 0 when all pass, 1 otherwise (the contract of the network's `one verify`).
//
//	verify [--coordinator HEX] FILE   (FILE "-" reads stdin)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	one "github.com/one-network/sdk-go"
)

func main() {
	coordinator := flag.String("coordinator", "", "pin the coordinator's public key (hex)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: verify [--coordinator HEX] FILE  (receipts: a JSON list, one receipt, {\"receipts\": [...]} or JSON lines; '-' for stdin)")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	var text []byte
	var err error
	if flag.Arg(0) == "-" {
		text, err = io.ReadAll(os.Stdin)
	} else {
		text, err = os.ReadFile(flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot read receipts:", err)
		os.Exit(1)
	}
	receipts, err := one.ParseReceipts(text)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot read receipts:", err)
		os.Exit(1)
	}
	verdicts := one.VerifyChain(receipts, *coordinator)
	ok := len(verdicts) > 0
	for _, v := range verdicts {
		fmt.Println(v.String())
		ok = ok && v.OK()
	}
	if ok {
		fmt.Printf("%d receipts: all checks pass\n", len(verdicts))
		return
	}
	fmt.Printf("%d receipts: verification FAILED\n", len(verdicts))
	os.Exit(1)
}
