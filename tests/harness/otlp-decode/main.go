// otlp-decode reads an OTLP/HTTP protobuf body (ExportTraceServiceRequest) on stdin and prints
// it as OTLP JSON (proto field names, ids as hex as the OTLP JSON encoding says), decoded by
// the opentelemetry-proto generated Go types. It fails on bytes those types do not accept and
// on any field they do not know, so a test of the plugin's encoder cannot pass on a wrong
// field number or wire type.
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/encoding/protojson"
)

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read: %v", err)
	}
	var req coltrace.ExportTraceServiceRequest
	if err := (proto.UnmarshalOptions{}).Unmarshal(body, &req); err != nil {
		fail("not an ExportTraceServiceRequest: %v", err)
	}
	if path := unknownFields(req.ProtoReflect(), "ExportTraceServiceRequest"); path != "" {
		fail("unknown fields at %s", path)
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&req)
	if err != nil {
		fail("json: %v", err)
	}
	// protojson writes bytes as base64; OTLP JSON (and the tests) use hex for trace and span ids.
	var tree any
	if err := json.Unmarshal(out, &tree); err != nil {
		fail("json: %v", err)
	}
	hexIds(tree)
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(tree); err != nil {
		fail("write: %v", err)
	}
}

// The path of the first message holding fields its type does not declare, "" for none.
func unknownFields(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		at := path + "." + string(fd.Name())
		if fd.IsList() {
			list := v.List()
			for i := 0; i < list.Len() && found == ""; i++ {
				found = unknownFields(list.Get(i).Message(), fmt.Sprintf("%s[%d]", at, i))
			}
		} else if !fd.IsMap() {
			found = unknownFields(v.Message(), at)
		}
		return found == ""
	})
	return found
}

func hexIds(node any) {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if s, ok := v.(string); ok && (k == "trace_id" || k == "span_id" || k == "parent_span_id") {
				if raw, err := decodeBase64(s); err == nil {
					n[k] = hex.EncodeToString(raw)
				}
				continue
			}
			hexIds(v)
		}
	case []any:
		for _, v := range n {
			hexIds(v)
		}
	}
}

func decodeBase64(s string) ([]byte, error) {
	var raw []byte
	err := json.Unmarshal([]byte(`"`+s+`"`), &raw)
	return raw, err
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "otlp-decode: "+format+"\n", args...)
	os.Exit(1)
}
