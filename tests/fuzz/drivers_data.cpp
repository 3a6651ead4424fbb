// Fuzz drivers for the data set readers (datasets/): IDX, CIFAR-10, ListOps and AAN TSV, IMDB
// folders, WikiText, the word vocabulary, PG-19 metadata, the token cache, and (with the optional
// libraries) WAV, Pathfinder metadata, the ImageNet CSV and synset mapping and image headers.
// Each seed function writes real-format files with the project's own writers.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "datasets/cifar10.h"
#include "datasets/idx.h"
#include "datasets/lra/listops.h"
#include "datasets/lra/text.h"
#include "datasets/text/text.h"
#include "fuzz/fuzz.h"
#ifdef MEGALODON_HAS_AUDIO
#include "datasets/audio/speech_commands.h"
#endif
#ifdef MEGALODON_HAS_VISION
#include <opencv2/imgcodecs.hpp>

#include "datasets/vision/imagenet.h"
#include "datasets/vision/pathfinder.h"
#endif

namespace mgl::fuzz {
namespace {

namespace fs = std::filesystem;
namespace text = datasets::text;

void seed_text(const fs::path& dir, const std::string& name, const std::string& content) {
  write_file(dir / name, content);
}

// ---- IDX ----------------------------------------------------------------------------------------

void run_idx(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "x-idx3-ubyte";
  write_file(f, data, size);
  torch::Tensor t;
  if (!refuse_or_accept([&] { t = datasets::read_idx_u8(f); }, f.string())) return;
  expect(t.scalar_type() == torch::kUInt8, "IDX: not a uint8 tensor");
  expect(t.is_contiguous(), "IDX: not contiguous");
}
void seeds_idx(const fs::path& dir) {
  datasets::write_idx_u8(dir / "labels-idx1-ubyte", torch::arange(0, 10, torch::kInt64).to(torch::kUInt8));
  datasets::write_idx_u8(dir / "images-idx3-ubyte", torch::arange(0, 2 * 5 * 4, torch::kInt64).to(torch::kUInt8).reshape({2, 5, 4}));
  datasets::write_idx_u8(dir / "images-idx3-ubyte.gz", torch::arange(0, 3 * 4 * 4, torch::kInt64).to(torch::kUInt8).reshape({3, 4, 4}));
}
MGL_FUZZ_READER("idx", "IDX files (MNIST / Fashion-MNIST), plain or gzip", run_idx, seeds_idx,
                {std::string("\0\0\x08\x03", 4), std::string("\0\0\x08\x01", 4), std::string("\x1f\x8b", 2)});

// ---- CIFAR-10 -----------------------------------------------------------------------------------

void run_cifar10(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "data_batch_1.bin";
  write_file(f, data, size);
  datasets::Cifar10Set s;
  if (!refuse_or_accept([&] { s = datasets::read_cifar10_bin({f}); }, f.string())) return;
  expect(s.images.dim() == 4 && s.images.size(1) == 3 && s.images.size(2) == 32 && s.images.size(3) == 32,
         "CIFAR-10: images not N×3×32×32");
  expect(s.labels.size(0) == s.images.size(0), "CIFAR-10: labels and images differ in number");
  expect(size == static_cast<size_t>(s.images.size(0)) * 3073, "CIFAR-10: bytes left over or missing");
  if (s.labels.numel()) expect(s.labels.min().item<int64_t>() >= 0 && s.labels.max().item<int64_t>() <= 9, "CIFAR-10: label outside 0..9");
}
void seeds_cifar10(const fs::path& dir) {
  auto images = torch::arange(0, 2 * 3 * 32 * 32, torch::kInt64).remainder(251).to(torch::kUInt8).reshape({2, 3, 32, 32});
  datasets::write_cifar10_bin(dir / "two_records.bin", images, torch::tensor({3, 9}));
}
MGL_FUZZ_READER("cifar10", "CIFAR-10 binary batches", run_cifar10, seeds_cifar10, {});

// ---- ListOps TSV --------------------------------------------------------------------------------

void run_listops(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "basic_train.tsv";
  write_file(f, data, size);
  std::vector<datasets::ListOpsExample> ex;
  if (!refuse_or_accept([&] { ex = datasets::read_listops_tsv(f); }, f.string())) return;
  for (const auto& e : ex) {
    expect(e.target >= 0 && e.target <= 9, "ListOps: target outside 0..9");
    expect(e.line >= 2, "ListOps: example from the header line");
    int64_t unknown = -1;
    const auto ids = datasets::ListOpsVocab::encode(e.source, &unknown);
    expect(unknown >= 0, "ListOps: unknown count not set");
    for (int64_t id : ids) expect(id >= 0 && id < datasets::ListOpsVocab::size, "ListOps: id outside the vocabulary");
    try {
      const int64_t v = datasets::evaluate_listops(e.source);
      expect(v >= 0 && v <= 9, "ListOps: evaluator value outside 0..9");
    } catch (const std::invalid_argument&) {
    }
  }
}
void seeds_listops(const fs::path& dir) {
  datasets::ListOpsGenOptions o;
  o.min_length = 5;
  o.max_length = 40;
  o.num_train = 6;
  o.num_val = 1;
  o.num_test = 1;
  o.seed = 3;
  datasets::generate_listops(o, dir / "gen");
  fs::rename(dir / "gen/basic_train.tsv", dir / "basic_train.tsv");
  fs::remove_all(dir / "gen");
  seed_text(dir, "first_last.tsv", "Source\tTarget\n( ( [FIRST 1 ) 2 ) ]\t1\n( ( [MED 3 ) 4 ) ]\t3\n");
}
MGL_FUZZ_READER("listops", "LRA ListOps TSV (and the tokenizer and evaluator on what it reads)", run_listops,
                seeds_listops, {"[MIN ", "[MAX ", "[MED ", "[SM ", "[FIRST ", " ] ", "( ", " )", "Source\tTarget\n"});

// ---- AAN TSV ------------------------------------------------------------------------------------

void run_aan(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "new_aan_pairs.train.tsv";
  write_file(f, data, size);
  std::vector<datasets::TextPairExample> ex;
  if (!refuse_or_accept([&] { ex = datasets::read_aan_tsv(f); }, f.string())) return;
  for (const auto& e : ex) expect(e.label == 0 || e.label == 1, "AAN: label not 0 or 1");
}
void seeds_aan(const fs::path& dir) {
  seed_text(dir, "pairs.tsv",
            "1.0\tid0a\tid0b\tpaper about parsing\tcites work on neural models\n"
            "0\tid1a\tid1b\tanother paper\tand its citation\n");
}
MGL_FUZZ_READER("aan", "LRA Retrieval (AAN) TSV", run_aan, seeds_aan, {"\t", "1.0", "0.0", "nan", "inf"});

// ---- IMDB folders -------------------------------------------------------------------------------
// The input is a list of files: name, 0x00, content, 0x01, name, 0x00, content, ... The first half of
// the files goes to neg/, the rest to pos/.

void run_imdb(const uint8_t* data, size_t size) {
  const fs::path root = fresh() / "aclImdb";
  const auto files = split_parts(data, size, "\x01", 16);
  for (size_t i = 0; i < files.size(); ++i) {
    const auto nc = split_parts(reinterpret_cast<const uint8_t*>(files[i].data()), files[i].size(), std::string_view("\0", 1), 2);
    std::string name(nc[0].substr(0, 60));
    for (char& c : name)
      if (c == '/' || c == '\0') c = '_';
    if (name.empty() || name == "." || name == "..") name = "x";
    const std::string content = nc.size() > 1 ? std::string(nc[1]) : std::string();
    write_file(root / "train" / (i < files.size() / 2 ? "neg" : "pos") / name, content);
  }
  fs::create_directories(root / "train/neg");
  fs::create_directories(root / "train/pos");
  std::vector<datasets::TextExample> ex;
  if (!refuse_or_accept([&] { ex = datasets::read_imdb_split(root, "train"); }, root.string())) return;
  for (const auto& e : ex) {
    expect(e.label == 0 || e.label == 1, "IMDB: label not 0 or 1");
    const auto ids = datasets::encode_bytes(e.text, 64);
    for (int64_t id : ids) expect(id >= 1 && id < datasets::kByteVocabSize, "IMDB: byte id outside 1..256");
  }
}
void seeds_imdb(const fs::path& dir) {
  seed_text(dir, "two_reviews",
            std::string("0_2.txt") + '\0' + "A dull review.<br /><br />Boring." + '\x01' + "10_9.txt" + '\0' +
                "A fine review, wonderful and moving.");
  seed_text(dir, "odd_names",
            std::string("12_3.txt") + '\0' + "x" + '\x01' + "notes.txt" + '\0' + "y" + '\x01' + "3_10.txt" + '\0' +
                "z" + '\x01' + "999999999999999999_1.txt" + '\0' + "w");
}
MGL_FUZZ_READER("imdb", "LRA Text (IMDB) review folders: file names and contents", run_imdb, seeds_imdb,
                {".txt", "_", std::string("\0", 1), "\x01"});

// ---- WikiText -----------------------------------------------------------------------------------

void run_wikitext(const uint8_t* data, size_t size) {
  const fs::path root = fresh();
  write_file(root / "wiki.train.tokens", data, size);
  write_file(root / "wiki.valid.tokens", std::string_view(" = Valid = \n\n the end \n"));
  write_file(root / "wiki.test.tokens", std::string_view(" = Test = \n"));
  std::unique_ptr<text::Corpus> corpus;
  if (!refuse_or_accept([&] { corpus = text::open_wikitext(root); }, root.string())) return;
  std::vector<text::Document> docs;
  if (!refuse_or_accept([&] { docs = corpus->documents(text::TextSplit::train); }, root.string())) return;
  const auto byte = text::make_byte_tokenizer();
  text::Vocabulary vocab;
  if (!refuse_or_accept([&] { vocab = text::Vocabulary::build({root / "wiki.train.tokens"}); }, "wiki.train.tokens")) return;
  const auto word = text::make_word_tokenizer(std::move(vocab));
  for (const auto& d : docs)
    for (const text::Tokenizer* tok : {byte.get(), word.get()}) {
      text::TokenizedDocument t;
      if (!refuse_or_accept([&] { t = corpus->tokenize(d, *tok); }, "wiki.train.tokens")) continue;
      for (int32_t id : t.ids) expect(id >= 0 && id < tok->vocab_size(), "WikiText: id outside the vocabulary");
      expect(t.words >= 0, "WikiText: negative word count");
    }
}
void seeds_wikitext(const fs::path& dir) {
  seed_text(dir, "wiki.tokens",
            " \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 , "
            "lit . Valkyria of the Battlefield 3 ) , commonly referred to as Valkyria Chronicles III outside Japan , is "
            "a tactical role @-@ playing video game . \n \n = = Gameplay = = \n\r\n\u00a0nbsp and\u3000ideographic\n");
}
MGL_FUZZ_READER("wikitext", "WikiText-103 token files (lines, words, </s>; byte and word tokenizers)", run_wikitext,
                seeds_wikitext, {" = ", " @-@ ", "<unk>", "</s>", "\n", "\r", "\xc2\xa0", "\xe3\x80\x80"});

// ---- fairseq dict.txt ---------------------------------------------------------------------------

void run_dict(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "dict.txt";
  write_file(f, data, size);
  text::Vocabulary v;
  if (!refuse_or_accept([&] { v = text::Vocabulary::load(f); }, f.string())) return;
  expect(v.size() >= 4 && v.size() % 8 == 0, "dict.txt: vocabulary size not padded to a multiple of 8");
  for (int32_t i = 0; i < static_cast<int32_t>(v.size()); ++i) expect(v.id(v.word(i)) == i || i < 4, "dict.txt: word/id mismatch");
}
void seeds_dict(const fs::path& dir) {
  seed_text(dir, "dict.txt", "the 100\n, 90\n. 80\n<unk> 5\nword 1 #fairseq:overwrite\nmadeupword0000 0\n");
}
MGL_FUZZ_READER("dict", "fairseq dict.txt word vocabularies", run_dict, seeds_dict,
                {" #fairseq:overwrite", "madeupword0000", "<s>", "</s>", "<pad>", "<unk>"});

// ---- PG-19 metadata.csv -------------------------------------------------------------------------

void run_pg19(const uint8_t* data, size_t size) {
  const fs::path root = fresh();
  write_file(root / "metadata.csv", data, size);
  write_file(root / "train/10.txt", std::string_view("In the beginning."));
  write_file(root / "validation/11.txt", std::string_view("Valid."));
  write_file(root / "test/12.txt", std::string_view("Test."));
  std::unique_ptr<text::Corpus> corpus;
  if (!refuse_or_accept([&] { corpus = text::open_pg19(root); }, "metadata.csv")) return;
  for (auto split : {text::TextSplit::train, text::TextSplit::valid, text::TextSplit::test}) {
    std::vector<text::Document> docs;
    if (!refuse_or_accept([&] { docs = corpus->documents(split); }, root.string())) continue;
    for (const auto& d : docs) expect(fs::exists(d.path), "PG-19: a document whose file does not exist");
  }
}
void seeds_pg19(const fs::path& dir) {
  seed_text(dir, "metadata.csv",
            "book_id,short_book_title,publication_date,book_link\r\n10,Ten,1900,http://x/10\r\n"
            "11,\"Eleven, \"\"quoted\"\"\",1901,http://x/11\r\n12,\"Twelve\nlines\",1902,http://x/12\r\n");
  seed_text(dir, "no_header.csv", "\xEF\xBB\xBF" "10,Ten,1900,x\n11,Eleven,1901,y\n12,Twelve,1902,z\n");
}
MGL_FUZZ_READER("pg19_csv", "PG-19 metadata.csv (RFC 4180 CSV)", run_pg19, seeds_pg19, {",", "\"", "\"\"", "\r\n", "\r"});

// ---- the packed token cache ---------------------------------------------------------------------

void run_token_cache(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "wikitext.train.byte-000000000000.tokens";
  write_file(f, data, size);
  text::PackedTokens t;
  if (!refuse_or_accept([&] { t = text::PackedTokens::open(f); }, f.string())) return;
  int64_t words = 0;
  for (int64_t d = 0; d < t.num_documents(); ++d) {
    expect(t.document_begin(d) <= t.document_end(d), "token cache: a document ends before it begins");
    expect(t.document_end(d) <= t.size(), "token cache: a document beyond the ids");
    words += t.document_words(d);
  }
  expect(words == t.total_words(), "token cache: word counts disagree");
  torch::Tensor ids;
  if (!refuse_or_accept([&] { ids = t.slice(0, t.size()); }, f.string())) return;  // a damaged id is named
  if (ids.numel()) expect(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < t.id_bound(), "token cache: id beyond its bound read");
}
void seeds_token_cache(const fs::path& dir) {
  text::write_packed_tokens(dir / "u16.tokens", "byte-fp|corpus-fp", {{{1, 2, 3}, 2, {}}, {{}, 0, {}}, {{256, 0, 255, 7}, 5, {2}}}, 257);
  text::write_packed_tokens(dir / "u32.tokens", "w|c", {{{70000, 1}, 1, {1}}, {{5}, 1, {}}}, 70001);
}
MGL_FUZZ_READER("token_cache", "the packed token cache (MGLTOK03)", run_token_cache, seeds_token_cache,
                {"MGLTOK03", "MGLTOK02", "MGLTOK01", "|"});

#ifdef MEGALODON_HAS_AUDIO
// ---- WAV ----------------------------------------------------------------------------------------

void run_wav(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "clip.wav";
  write_file(f, data, size);
  datasets::WavInfo info;
  if (!refuse_or_accept([&] { info = datasets::read_wav_info(f); }, f.string())) return;
  expect(info.frames >= 0 && info.sample_rate >= 1 && info.channels >= 1, "WAV: header accepted with a bad field");
  // Decoding tens of millions of frames from a header that claims them is the reader's job to refuse
  // (truncation check) — but a header may legitimately declare a long clip: bound the work here.
  if (info.frames > (1 << 22) || info.channels > 64) return;
  for (int variant = 0; variant < 2; ++variant) {
    datasets::WavReadOptions o;
    if (variant) {
      o.rate = datasets::RatePolicy::resample;
      o.channels = datasets::ChannelPolicy::mix;
    }
    if (variant && info.sample_rate > 1000000) continue;  // resampling from absurd rates: bounded work only
    std::vector<float> x;
    if (!refuse_or_accept([&] { x = datasets::read_wav(f, o); }, f.string())) continue;
    if (!variant) expect(static_cast<int64_t>(x.size()) == info.frames, "WAV: decoded length differs from the header's");
    for (float v : x) expect(std::isfinite(v), "WAV: a decoded sample is not finite (NaN or infinity accepted)");
  }
}
void seeds_wav(const fs::path& dir) {
  std::vector<float> x(400);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(0.4 * std::sin(0.05 * static_cast<double>(i)));
  datasets::write_wav_pcm16(dir / "mono16k.wav", x, 16000);
  datasets::write_wav_pcm16(dir / "mono8k.wav", std::vector<float>(x.begin(), x.begin() + 200), 8000);
  datasets::write_wav_pcm16(dir / "empty.wav", {}, 16000);
}
MGL_FUZZ_READER("wav", "WAV clips (libsndfile behind our RIFF checks; Speech Commands)", run_wav, seeds_wav,
                {"RIFF", "WAVE", "fmt ", "data", "LIST", std::string("\x01\0", 2), std::string("\x03\0", 2)});
#endif

#ifdef MEGALODON_HAS_VISION
// ---- images: a tiny PNG for the folder readers --------------------------------------------------

std::vector<uint8_t> tiny_png(int side, int value) {
  cv::Mat m(side, side, CV_8UC1, cv::Scalar(value));
  std::vector<uint8_t> out;
  cv::imencode(".png", m, out);
  return out;
}
std::vector<uint8_t> tiny_jpeg(int side, int value) {
  cv::Mat m(side, side, CV_8UC3, cv::Scalar(value, 255 - value, value / 2));
  std::vector<uint8_t> out;
  cv::imencode(".jpg", m, out);
  return out;
}

// ---- Pathfinder metadata ------------------------------------------------------------------------

void run_pathfinder(const uint8_t* data, size_t size) {
  const fs::path root = fresh() / "curv_contour_length_14";
  write_file(root / "metadata/0.npy", data, size);
  static const auto png = tiny_png(4, 9);
  for (int n = 0; n < 3; ++n) write_file(root / fmt::format("imgs/0/sample_{}.png", n), png.data(), png.size());
  write_file(root / "imgs/0/sample_3.png", std::string_view());  // the known empty image
  datasets::PathfinderIndex ix;
  if (!refuse_or_accept([&] { ix = datasets::read_pathfinder_index(root, true); }, root.string())) return;
  std::error_code ec;
  const std::string base = fs::weakly_canonical(root, ec).string() + "/";
  for (const auto& item : ix.items) {
    expect(item.label == 0 || item.label == 1, "Pathfinder: label not 0 or 1");
    const std::string where = fs::weakly_canonical(root / item.image, ec).string();
    expect(where.compare(0, base.size(), base) == 0, "Pathfinder: an image path outside the folder: " + item.image);
  }
}
void seeds_pathfinder(const fs::path& dir) {
  seed_text(dir, "0.npy",
            "imgs/0 sample_0.png 0 1 2 14 3\nimgs/0 sample_1.png 0 0 2 14 3\nimgs/0 sample_2.png 0 1 2 14 3\n"
            "imgs/0 sample_3.png 0 1 2 14 3\n");
}
MGL_FUZZ_READER("pathfinder", "LRA Pathfinder metadata (metadata/<b>.npy text)", run_pathfinder, seeds_pathfinder,
                {"imgs/0 ", "sample_", ".png ", " 0 ", " 1 ", "../", "\n"});

// ---- ImageNet LOC_val_solution.csv and LOC_synset_mapping.txt ------------------------------------

fs::path imagenet_tree() {
  const fs::path root = fresh() / "imagenet";
  static const auto jpg = tiny_jpeg(8, 40);
  for (const char* p : {"train/n01000000/n01000000_1.JPEG", "train/n02000000/n02000000_2.JPEG",
                        "val/ILSVRC2012_val_00000001.JPEG", "val/ILSVRC2012_val_00000002.JPEG"})
    write_file(root / p, jpg.data(), jpg.size());
  return root;
}

void check_index(const datasets::ImageNetIndex& ix) {
  expect(ix.wnids.size() == ix.names.size(), "ImageNet: class names and WNIDs differ in number");
  for (const auto* split : {&ix.train, &ix.val})
    for (const auto& item : *split)
      expect(item.label >= 0 && item.label < static_cast<int64_t>(ix.wnids.size()), "ImageNet: label outside the classes");
}

void run_imagenet_csv(const uint8_t* data, size_t size) {
  const fs::path root = imagenet_tree();
  write_file(root / "LOC_val_solution.csv", data, size);
  datasets::ImageNetIndex ix;
  if (refuse_or_accept([&] { ix = datasets::read_imagenet_index(root, datasets::BadImages::skip, true); }, root.string()))
    check_index(ix);
}
void seeds_imagenet_csv(const fs::path& dir) {
  seed_text(dir, "LOC_val_solution.csv",
            "\xEF\xBB\xBFImageId,PredictionString\nILSVRC2012_val_00000002,n02000000 0 0 7 7 \n"
            "\"ILSVRC2012_val_00000001\",\"n01000000 1 2 3 4 n01000000 5 6 7 8 \"\n");
}
MGL_FUZZ_READER("imagenet_csv", "ImageNet LOC_val_solution.csv", run_imagenet_csv, seeds_imagenet_csv,
                {"ImageId,PredictionString\n", "ILSVRC2012_val_0000000", "n01000000 ", "n02000000", ",", "\""});

void run_imagenet_synsets(const uint8_t* data, size_t size) {
  const fs::path root = imagenet_tree();
  write_file(root / "LOC_synset_mapping.txt", data, size);
  write_file(root / "LOC_val_solution.csv",
             std::string_view("ImageId,PredictionString\nILSVRC2012_val_00000001,n01000000 0 0 7 7\n"
                              "ILSVRC2012_val_00000002,n02000000 0 0 7 7\n"));
  datasets::ImageNetIndex ix;
  if (refuse_or_accept([&] { ix = datasets::read_imagenet_index(root, datasets::BadImages::skip, false); }, root.string()))
    check_index(ix);
}
void seeds_imagenet_synsets(const fs::path& dir) {
  seed_text(dir, "LOC_synset_mapping.txt", "n02000000 goldfish, Carassius auratus\r\nn01000000 tench, Tinca tinca\r\n\r\n");
}
MGL_FUZZ_READER("imagenet_synsets", "ImageNet LOC_synset_mapping.txt", run_imagenet_synsets, seeds_imagenet_synsets,
                {"n01000000 ", "n02000000 ", "n03000000", "\r\n", "\t"});

// ---- image files: header checks, the quirk walk and the decoder ----------------------------------

void run_image(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "n01000000_1.JPEG";
  write_file(f, data, size);
  (void)datasets::image_quirks(data, size, ".JPEG");
  cv::Mat m;
  if (!refuse_or_accept([&] { m = datasets::decode_image_rgb(f); }, f.string())) return;
  expect(!m.empty() && m.type() == CV_8UC3, "image: decoded to something other than 8-bit RGB");
  torch::Tensor t;
  if (refuse_or_accept([&] { t = datasets::load_pathfinder_image(f); }, f.string()))
    expect(t.dim() == 2 && t.scalar_type() == torch::kUInt8, "Pathfinder image: not H×W uint8");
}
void seeds_image(const fs::path& dir) {
  const auto jpg = tiny_jpeg(8, 40), png = tiny_png(6, 200);
  write_file(dir / "rgb.JPEG", jpg.data(), jpg.size());
  write_file(dir / "grey.png", png.data(), png.size());
}
MGL_FUZZ_READER("image", "ImageNet / Pathfinder image files (signature, end marker, header walk, decoding)", run_image,
                seeds_image, {"\xff\xd8\xff", "\xff\xd9", "\xff\xc0", "\xff\xee" "Adobe", "IEND", "IHDR", "\x89PNG\r\n\x1a\n"});
#endif

}  // namespace
}  // namespace mgl::fuzz
