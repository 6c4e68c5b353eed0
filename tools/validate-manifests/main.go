// validate-manifests checks Kubernetes manifests for Istio offline, the way the API server
// would check them on `kubectl apply`, against Istio's published CRDs:
//
//   - custom resources (WasmPlugin, Telemetry, any kind the CRD file defines): the CRD's
//     OpenAPI v3 schema, list-type rules, unknown fields (as kubectl's strict field validation
//     reports them), the x-kubernetes-validations CEL rules with Kubernetes' CEL libraries
//     (isURL, url(), ...), and metadata (name, namespace). The code path is the API server's
//     own (k8s.io/apiextensions-apiserver), arranged as Istio's pkg/config/crd/validator.go.
//   - IstioOperator (install.istio.io/v1alpha1, used with `istioctl install -f`):
//     spec.meshConfig is decoded strictly (unknown fields and wrong types are errors) into
//     istio.io/api's MeshConfig, the proto that istiod reads; other spec fields are only
//     checked by name.
//
// Usage: validate-manifests -crds <customresourcedefinitions.gen.yaml> FILE...
// Prints one line per document and exits 1 if any document is invalid, 2 on usage errors.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextval "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubeyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

type kindValidator struct {
	namespaced bool
	schema     validation.SchemaCreateValidator
	structural *structuralschema.Structural
	cel        *cel.Validator
}

type validator struct {
	byGVK map[schema.GroupVersionKind]*kindValidator
}

var istioOperatorGVK = schema.GroupVersionKind{Group: "install.istio.io", Version: "v1alpha1", Kind: "IstioOperator"}

// Fields of IstioOperatorSpec (istio/istio operator/pkg/apis/types.go).
var istioOperatorSpecFields = map[string]bool{
	"profile": true, "hub": true, "tag": true, "namespace": true, "revision": true,
	"compatibilityVersion": true, "meshConfig": true, "components": true, "values": true,
	"unvalidatedValues": true,
}

func loadCRDs(files []string) (*validator, error) {
	v := &validator{byGVK: map[schema.GroupVersionKind]*kindValidator{}}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		dec := kubeyaml.NewYAMLOrJSONDecoder(f, 512*1024)
		for {
			un := &unstructured.Unstructured{}
			err := dec.Decode(un)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %v", file, err)
			}
			if un.GetKind() != "CustomResourceDefinition" {
				continue
			}
			crdv1 := apiextensionsv1.CustomResourceDefinition{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(un.UnstructuredContent(), &crdv1); err != nil {
				f.Close()
				return nil, err
			}
			crd := apiextensions.CustomResourceDefinition{}
			if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&crdv1, &crd, nil); err != nil {
				f.Close()
				return nil, err
			}
			for _, ver := range crd.Spec.Versions {
				crd.Status.StoredVersions = append(crd.Status.StoredVersions, ver.Name)
			}
			if errs := apiextval.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
				f.Close()
				return nil, fmt.Errorf("CRD %s is not valid: %v", crd.Name, errs.ToAggregate())
			}
			for _, ver := range crd.Spec.Versions {
				s := ver.Schema
				if s == nil {
					s = crd.Spec.Validation
				}
				if s == nil || s.OpenAPIV3Schema == nil {
					continue
				}
				sv, _, err := validation.NewSchemaValidator(s.OpenAPIV3Schema)
				if err != nil {
					f.Close()
					return nil, err
				}
				st, err := structuralschema.NewStructural(s.OpenAPIV3Schema)
				if err != nil {
					f.Close()
					return nil, err
				}
				gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}
				v.byGVK[gvk] = &kindValidator{
					namespaced: crd.Spec.Scope == apiextensions.NamespaceScoped,
					schema:     sv,
					structural: st,
					cel:        cel.NewValidator(st, true, celconfig.PerCallLimit),
				}
			}
		}
		f.Close()
	}
	if len(v.byGVK) == 0 {
		return nil, errors.New("no CustomResourceDefinitions found in " + strings.Join(files, ", "))
	}
	return v, nil
}

func (v *validator) validateCustomResource(un *unstructured.Unstructured, kv *kindValidator) []string {
	var out []string
	add := func(errs field.ErrorList) {
		for _, e := range errs {
			out = append(out, e.Error())
		}
	}
	if kv.namespaced && un.GetNamespace() == "" {
		// kubectl sends namespace-less manifests to the context's namespace, as istioctl validate assumes "default".
		un = un.DeepCopy()
		un.SetNamespace("default")
	}
	add(metavalidation.ValidateObjectMetaAccessor(un, kv.namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata")))
	obj := un.DeepCopy().Object
	structuraldefaulting.Default(obj, kv.structural)
	add(validation.ValidateCustomResource(nil, obj, kv.schema))
	add(structurallisttype.ValidateListSetsAndMaps(nil, kv.structural, obj))
	// As the resource root, pruning also reports unknown top-level fields (next to spec/status).
	unknown := structuralpruning.PruneWithOptions(runtime.DeepCopyJSON(obj), kv.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		if !strings.HasPrefix(p, "metadata.") {
			out = append(out, fmt.Sprintf("%s: unknown field", p))
		}
	}
	if kv.cel != nil {
		errs, _ := kv.cel.Validate(context.Background(), nil, kv.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		add(errs)
	}
	return out
}

func validateIstioOperator(un *unstructured.Unstructured) []string {
	var out []string
	for key := range un.Object {
		switch key {
		case "apiVersion", "kind", "metadata", "spec":
		default:
			out = append(out, fmt.Sprintf("%s: unknown field", key))
		}
	}
	spec, ok := un.Object["spec"].(map[string]interface{})
	if !ok {
		return append(out, "spec: Required value: an object")
	}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !istioOperatorSpecFields[k] {
			out = append(out, fmt.Sprintf("spec.%s: unknown field", k))
		}
	}
	if mc, found := spec["meshConfig"]; found {
		raw, err := json.Marshal(mc)
		if err != nil {
			return append(out, "spec.meshConfig: "+err.Error())
		}
		mesh := &meshv1alpha1.MeshConfig{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(raw, mesh); err != nil {
			out = append(out, "spec.meshConfig (istio.mesh.v1alpha1.MeshConfig): "+err.Error())
		}
	}
	return out
}

// splitDocuments splits a YAML stream on document separators, keeping line numbers.
func splitDocuments(data []byte) []struct {
	line int
	text []byte
} {
	var docs []struct {
		line int
		text []byte
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := 0
	var cur [][]byte
	flush := func() {
		text := bytes.Join(cur, nil)
		if len(bytes.TrimSpace(stripComments(text))) > 0 {
			docs = append(docs, struct {
				line int
				text []byte
			}{start + 1, text})
		}
		cur = nil
	}
	for i, l := range lines {
		if bytes.Equal(bytes.TrimRight(l, " \t\r\n"), []byte("---")) {
			flush()
			start = i + 1
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}

func stripComments(text []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(text, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func main() {
	var crdFiles multiFlag
	flag.Var(&crdFiles, "crds", "CRD YAML file (repeatable)")
	flag.Parse()
	if len(crdFiles) == 0 || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: validate-manifests -crds CRDS.yaml FILE...")
		os.Exit(2)
	}
	v, err := loadCRDs(crdFiles)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loading CRDs:", err)
		os.Exit(2)
	}
	invalid := 0
	total := 0
	for _, file := range flag.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Printf("INVALID %s: %v\n", file, err)
			invalid++
			continue
		}
		docs := splitDocuments(data)
		if len(docs) == 0 {
			fmt.Printf("INVALID %s: no YAML documents\n", file)
			invalid++
			continue
		}
		for _, doc := range docs {
			total++
			where := fmt.Sprintf("%s:%d", file, doc.line)
			js, err := yaml.YAMLToJSONStrict(doc.text)
			if err != nil {
				fmt.Printf("INVALID %s: YAML: %v\n", where, err)
				invalid++
				continue
			}
			un := &unstructured.Unstructured{}
			if err := un.UnmarshalJSON(js); err != nil {
				fmt.Printf("INVALID %s: %v\n", where, err)
				invalid++
				continue
			}
			gvk := un.GroupVersionKind()
			what := fmt.Sprintf("%s %s/%s", gvk.Kind, un.GetNamespace(), un.GetName())
			var problems []string
			if kv, ok := v.byGVK[gvk]; ok {
				problems = v.validateCustomResource(un, kv)
			} else if gvk == istioOperatorGVK {
				problems = validateIstioOperator(un)
			} else {
				problems = []string{fmt.Sprintf("no schema for %s (apiVersion %q, kind %q): not an Istio resource this validator knows", gvk.String(), un.GetAPIVersion(), un.GetKind())}
			}
			if len(problems) > 0 {
				invalid++
				fmt.Printf("INVALID %s: %s\n", where, what)
				for _, p := range problems {
					fmt.Printf("    %s\n", p)
				}
			} else {
				fmt.Printf("valid   %s: %s (%s)\n", where, what, gvk.GroupVersion().String())
			}
		}
	}
	fmt.Printf("%d document(s), %d invalid\n", total, invalid)
	if invalid > 0 {
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
