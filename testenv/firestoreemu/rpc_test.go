package firestoreemu_test

import (
	"context"
	"io"
	"testing"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// These tests use the official low-level client (apiv1) for RPCs and
// options the high-level client does not expose.

func intVal(i int64) *pb.Value { return &pb.Value{ValueType: &pb.Value_IntegerValue{IntegerValue: i}} }

func TestDocumentRPCs(t *testing.T) {
	ctx := context.Background()
	gc := rawClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	root := db + "/documents"

	created := must(gc.CreateDocument(ctx, &pb.CreateDocumentRequest{
		Parent: root, CollectionId: "c", Document: &pb.Document{Fields: map[string]*pb.Value{"a": intVal(1), "b": intVal(2)}},
	}))(t)
	if len(created.GetName()) != len(root+"/c/")+20 || created.GetCreateTime() == nil {
		t.Fatalf("CreateDocument with an automatic ID = %v", created)
	}
	_, err := gc.CreateDocument(ctx, &pb.CreateDocumentRequest{Parent: root, CollectionId: "c", DocumentId: created.GetName()[len(root+"/c/"):], Document: &pb.Document{}})
	wantCode(t, err, codes.AlreadyExists)

	got := must(gc.GetDocument(ctx, &pb.GetDocumentRequest{Name: created.GetName(), Mask: &pb.DocumentMask{FieldPaths: []string{"b"}}}))(t)
	if len(got.GetFields()) != 1 || got.GetFields()["b"].GetIntegerValue() != 2 {
		t.Fatalf("GetDocument with mask = %v", got.GetFields())
	}

	upd := must(gc.UpdateDocument(ctx, &pb.UpdateDocumentRequest{
		Document:        &pb.Document{Name: created.GetName(), Fields: map[string]*pb.Value{"a": intVal(10)}},
		UpdateMask:      &pb.DocumentMask{FieldPaths: []string{"a", "b"}}, // b absent: deleted
		CurrentDocument: &pb.Precondition{ConditionType: &pb.Precondition_UpdateTime{UpdateTime: created.GetUpdateTime()}},
	}))(t)
	if len(upd.GetFields()) != 1 || upd.GetFields()["a"].GetIntegerValue() != 10 {
		t.Fatalf("UpdateDocument = %v", upd.GetFields())
	}
	_, err = gc.UpdateDocument(ctx, &pb.UpdateDocumentRequest{
		Document:        &pb.Document{Name: created.GetName()},
		CurrentDocument: &pb.Precondition{ConditionType: &pb.Precondition_UpdateTime{UpdateTime: created.GetUpdateTime()}},
	})
	wantCode(t, err, codes.FailedPrecondition)

	// UpdateDocument without a precondition is an upsert.
	must(gc.UpdateDocument(ctx, &pb.UpdateDocumentRequest{Document: &pb.Document{Name: root + "/c/upserted"}}))(t)

	err = gc.DeleteDocument(ctx, &pb.DeleteDocumentRequest{Name: created.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gc.GetDocument(ctx, &pb.GetDocumentRequest{Name: created.GetName()})
	wantCode(t, err, codes.NotFound)
	err = gc.DeleteDocument(ctx, &pb.DeleteDocumentRequest{Name: created.GetName(), CurrentDocument: &pb.Precondition{ConditionType: &pb.Precondition_Exists{Exists: true}}})
	wantCode(t, err, codes.NotFound)

	_, err = gc.GetDocument(ctx, &pb.GetDocumentRequest{Name: root + "/only-collection"})
	wantCode(t, err, codes.InvalidArgument)
}

func TestListDocumentsPaging(t *testing.T) {
	ctx := context.Background()
	gc := rawClient(t)
	c := newClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	for _, id := range []string{"e", "a", "c", "b", "d"} {
		must(c.Doc("l/"+id).Set(ctx, map[string]any{"id": id}))(t)
	}
	it := gc.ListDocuments(ctx, &pb.ListDocumentsRequest{Parent: db + "/documents", CollectionId: "l", PageSize: 2})
	var got []string
	for {
		d, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.GetName()[len(db+"/documents/l/"):])
	}
	if want := "abcde"; len(got) != 5 || got[0]+got[1]+got[2]+got[3]+got[4] != want {
		t.Fatalf("paged listing = %v, want %s", got, want)
	}
}

func TestBatchWriteRejectsDuplicateDocuments(t *testing.T) {
	gc := rawClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	w := &pb.Write{Operation: &pb.Write_Update{Update: &pb.Document{Name: db + "/documents/c/d"}}}
	_, err := gc.BatchWrite(context.Background(), &pb.BatchWriteRequest{Database: db, Writes: []*pb.Write{w, w}})
	wantCode(t, err, codes.InvalidArgument)
}

func TestCursorOnPrefixOfOrderings(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	seedNumbers(t, c)
	gc := rawClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	q := &pb.StructuredQuery{
		From: []*pb.StructuredQuery_CollectionSelector{{CollectionId: "nums"}},
		OrderBy: []*pb.StructuredQuery_Order{
			{Field: &pb.StructuredQuery_FieldReference{FieldPath: "g"}, Direction: pb.StructuredQuery_ASCENDING},
			{Field: &pb.StructuredQuery_FieldReference{FieldPath: "n"}, Direction: pb.StructuredQuery_DESCENDING},
		},
		StartAt: &pb.Cursor{Values: []*pb.Value{intVal(1)}, Before: true},
		Limit:   wrapperspb.Int32(4),
	}
	stream := must(gc.RunQuery(ctx, &pb.RunQueryRequest{Parent: db + "/documents", QueryType: &pb.RunQueryRequest_StructuredQuery{StructuredQuery: q}}))(t)
	var got []string
	for {
		res, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d := res.GetDocument(); d != nil {
			got = append(got, d.GetName()[len(d.GetName())-3:])
		}
	}
	if want := []string{"d07", "d04", "d01", "d08"}; len(got) != 4 || got[0] != want[0] || got[3] != want[3] {
		t.Fatalf("got %v, want %v", got, want)
	}
}
