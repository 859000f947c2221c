package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// Full-text benchmark data: n Patients whose narratives hold 12 words drawn
// from a 5,000-word vocabulary with a Zipf distribution (a few words are in
// most narratives, most words in few), and a 4-character Chinese diagnosis
// from 400 characters. Each has family "ftfam%05d".
const ftVocabulary = 5000

func ftWord(i int) string { return fmt.Sprintf("w%04d", i) }

var ftHan = []rune("病患者诊断治疗高血压糖尿肺癌骨折发烧咳嗽头痛胃炎肝肾心脏血液感染过敏哮喘贫血关节炎症肿瘤手术药物检查结果正常异常慢性急性左右上下前后内外轻重度复查随访住院门诊急诊护理康复营养睡眠疼痛呼吸循环消化神经精神皮肤眼耳鼻喉口腔牙齿妇产儿科老年男女体温脉搏血糖血脂尿酸蛋白细胞红白板淋巴免疫抗体病毒细菌真菌寄生虫")

// LoadFullText writes the n Patients in transactions of 1,000.
func LoadFullText(tb testing.TB, s store.Store, n int) {
	r := rand.New(rand.NewPCG(5, 6))
	zipf := rand.NewZipf(r, 1.1, 1, ftVocabulary-1)
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		err := s.Tx(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+1000, n); i++ {
				words := make([]string, 12)
				for k := range words {
					words[k] = ftWord(int(zipf.Uint64()))
				}
				zh := make([]rune, 4)
				for k := range zh {
					zh[k] = ftHan[r.IntN(len(ftHan))]
				}
				id := fmt.Sprintf("ftp-%05d", i)
				fam := fmt.Sprintf("ftfam%05d", i)
				obj := map[string]any{"resourceType": "Patient", "id": id,
					"text": map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml"><p>` + strings.Join(words, " ") + `</p><p>` + string(zh) + `</p></div>`},
					"name": []any{map[string]any{"family": fam}}}
				body, err := json.Marshal(obj)
				if err != nil {
					return err
				}
				w := &store.Write{Type: "Patient", ID: id, Version: 1, Method: "POST", LastUpdated: time.Unix(1700000000, 0), Body: body,
					Index: []search.Entry{{Param: "family", Type: search.TypeString, Str: fam, Exact: fam}}}
				if _, err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchFullText runs full-text searches of one kind over the n Patients of
// LoadFullText (exact total and a page of 20) and reports p50 and p95 in ms.
// Kinds: "rare" (_text= a word from the vocabulary's tail), "common"
// (_text= two of the ten most frequent words: thousands of matches),
// "chinese" (_text= a 2-character word), "family-text" (family= one
// Patient plus _text= a frequent word: the string drives, the document is
// probed), "family" (family= alone: the same run's peer without full text).
func BenchFullText(b *testing.B, s store.Store, n int, kind string) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var qs string
		switch kind {
		case "rare":
			qs = "_text=" + ftWord(1000+r.IntN(ftVocabulary-1000))
		case "common":
			qs = "_text=" + url.QueryEscape(ftWord(r.IntN(10))+" "+ftWord(r.IntN(10)))
		case "chinese":
			qs = "_text=" + url.QueryEscape(string([]rune{ftHan[r.IntN(len(ftHan))], ftHan[r.IntN(len(ftHan))]}))
		case "family-text":
			qs = fmt.Sprintf("family=ftfam%05d&_text=%s", r.IntN(n), ftWord(r.IntN(3)))
		case "family":
			qs = fmt.Sprintf("family=ftfam%05d", r.IntN(n))
		default:
			b.Fatalf("unknown kind %s", kind)
		}
		vals, err := url.ParseQuery(qs)
		if err != nil {
			b.Fatal(err)
		}
		qq, _, err := search.Parse("Patient", vals, search.ParseOptions{Strict: true})
		if err != nil {
			b.Fatal(err)
		}
		qq.Total, qq.Count = search.TotalAccurate, 20
		st := time.Now()
		if _, err := s.Search(ctx, qq); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(st))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	b.StartTimer()
}
