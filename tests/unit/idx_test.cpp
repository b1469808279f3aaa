#include "data/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <functional>

#include "core/errors.h"
#include "support/temp_dir.h"

namespace empiric {
namespace {

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// An IDX image file of n images of r x c whose pixel i is i % 251.
std::string idx_images(uint32_t n, uint32_t r, uint32_t c) {
  std::string s = be32(0x803) + be32(n) + be32(r) + be32(c);
  for (uint32_t i = 0; i < n * r * c; ++i) s += char(i % 251);
  return s;
}

std::string idx_labels(const std::string& labels) {
  return be32(0x801) + be32(uint32_t(labels.size())) + labels;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Idx, ReadsPlainImagesAndLabels) {
  testing::TempDir dir;
  auto img = read_idx_images(dir.write("img", idx_images(3, 2, 4)));
  EXPECT_EQ(img.count, 3);
  EXPECT_EQ(img.rows, 2);
  EXPECT_EQ(img.cols, 4);
  ASSERT_EQ(img.pixels.size(), 24u);
  EXPECT_EQ(img.pixels[23], 23);
  auto labels = read_idx_labels(dir.write("lab", idx_labels({1, 7, 9})));
  EXPECT_EQ(labels, (std::vector<uint8_t>{1, 7, 9}));
}

TEST(Idx, ReadsGzipTheSame) {
  testing::TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(5, 3, 3));
  auto img = read_idx_images(dir.file("img.gz"));
  EXPECT_EQ(img.count, 5);
  EXPECT_EQ(img.pixels[44], 44);
}

TEST(Idx, WrongMagicIsNamed) {
  testing::TempDir dir;
  std::string path = dir.write("lab", idx_labels({1, 2}));
  std::string msg = error_of([&] { read_idx_images(path); });
  EXPECT_NE(msg.find("magic number 0x00000801 is not an IDX image file's (0x00000803)"),
            std::string::npos)
      << msg;
}

TEST(Idx, AFileTooShortForAHeaderSaysSo) {
  // An empty file was reported as having magic number 0x00000000.
  testing::TempDir dir;
  for (const std::string& bytes : {std::string(), std::string("\x00\x00\x08", 3)}) {
    std::string msg = error_of([&] { read_idx_images(dir.write("img", bytes)); });
    EXPECT_NE(msg.find(std::to_string(bytes.size()) +
                       " bytes (after decompression): too short for an IDX header"),
              std::string::npos)
        << msg;
    msg = error_of([&] { read_idx_labels(dir.write("lab", bytes)); });
    EXPECT_NE(msg.find("too short for an IDX header"), std::string::npos) << msg;
  }
}

TEST(Idx, TruncatedFileSaysExpectedAndFoundSizes) {
  testing::TempDir dir;
  std::string bytes = idx_images(4, 2, 2);
  std::string path = dir.write("img", bytes.substr(0, bytes.size() - 3));
  std::string msg = error_of([&] { read_idx_images(path); });
  EXPECT_NE(msg.find("header says 4 images of 2x2 (32 bytes), file has 29 bytes"),
            std::string::npos)
      << msg;
  std::string lab = dir.write("lab", idx_labels({1, 2, 3}).substr(0, 9));
  EXPECT_NE(error_of([&] { read_idx_labels(lab); }).find("header says 3 labels"),
            std::string::npos);
}

TEST(Idx, EmptyOrOverflowingHeadersAreNamed) {
  testing::TempDir dir;
  // No images, or images of no pixels: nothing to train on (a division by zero later on).
  EXPECT_NE(error_of([&] {
              read_idx_images(dir.write("none", idx_images(0, 28, 28)));
            }).find("header says 0 images of 28x28; expected at least one image"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              read_idx_images(dir.write("flat", idx_images(3, 0, 0)));
            }).find("expected at least one image of at least 1x1 pixel"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              read_idx_labels(dir.write("nolab", idx_labels("")));
            }).find("header says 0 labels"),
            std::string::npos);
  // Counts whose product wraps around 2^64 to the file's size must not pass for it: 2^22 images
  // of 2^22 x 2^22 pixels are 2^66 bytes, 0 in 64 bits, so a bare header looked complete.
  const std::string wrap = be32(0x803) + be32(1u << 22) + be32(1u << 22) + be32(1u << 22);
  EXPECT_NE(error_of([&] { read_idx_images(dir.write("wrap", wrap)); }).find("over 2^62 bytes"),
            std::string::npos);
  // A header past 4 GiB is refused before a byte of the body is read: behind it a gzip bomb
  // would otherwise be inflated whole (here 2^16 images of 2^9 x 2^9 = 2^34 bytes).
  write_gz(dir.file("huge.gz"), be32(0x803) + be32(1u << 16) + be32(1u << 9) + be32(1u << 9) +
                                    std::string(size_t(1) << 20, '\0'));
  EXPECT_NE(error_of([&] {
              read_idx_images(dir.file("huge.gz"));
            }).find("(17179869200 bytes): more than the 4 GiB an image file may hold here"),
            std::string::npos);
}

TEST(Idx, ImagesPastTheFreeMemoryAreRefusedBeforeTheBodyIsRead) {
  // Under the 4 GiB cap, a header's floats (and their copies while a data set is made) could
  // still be past this machine's memory: read whole, then the kernel ended empiric.
  testing::TempDir dir;
  const std::string bare = dir.write("bare", be32(0x803) + be32(1000) + be32(32) + be32(32));
  EXPECT_EQ(error_of([&] { read_idx_images(bare, int64_t(8) << 20); }),
            bare +
                ": header says 1000 images of 32x32 (1024016 bytes): 3.9 MiB as floats, about "
                "11.7 MiB while loading, more than the 8.0 MiB this machine has free; a "
                "smaller image set (or a wrong header)");
  EXPECT_NE(error_of([&] {
              read_idx_images(bare, int64_t(16) << 20);
            }).find("file has 16 bytes (truncated or wrong file)"),
            std::string::npos);
}

TEST(Idx, LabelsCountedOtherThanTheImagesAreRefusedBeforeTheyAreRead) {
  // A header of 4e9 labels beside 3 images was read (up to 4 GB) before the counts were
  // compared, and a machine short of memory blamed the memory.
  testing::TempDir dir;
  const std::string lab = dir.write("lab", be32(0x801) + be32(4000000000u) + std::string(3, '\1'));
  EXPECT_EQ(error_of([&] { read_idx_labels(lab, 3, "img"); }),
            lab + ": 4000000000 labels, but img has 3 images; expected one label per image");
  const std::string three = dir.write("three", idx_labels({1, 2, 3}));
  EXPECT_EQ(read_idx_labels(three, 3, "img").size(), 3u);
}

TEST(Idx, AFileLongerThanItsHeaderSaysIsRefusedWithoutReadingItAll) {
  testing::TempDir dir;
  const std::string extra = idx_images(4, 2, 2) + "xyz";
  EXPECT_NE(error_of([&] { read_idx_images(dir.write("img", extra)); })
                .find("header says 4 images of 2x2 (32 bytes), file has more (after "
                      "decompression; a wrong file)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              read_idx_labels(dir.write("lab", idx_labels({1, 2, 3}) + "z"));
            }).find("header says 3 labels (11 bytes), file has more"),
            std::string::npos);
  // A gzip file of 64 MiB of zeros behind a header of one 1x1 image (a "bomb": 64 KiB on disk)
  // is refused at the byte past its header's 17, not inflated whole and measured.
  write_gz(dir.file("bomb.gz"), idx_images(1, 1, 1) + std::string(size_t(64) << 20, '\0'));
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("bomb.gz")); }).find("file has more"),
            std::string::npos);
}

TEST(Idx, TruncatedGzipIsAnError) {
  testing::TempDir dir;
  write_gz(dir.file("full.gz"), idx_images(50, 8, 8));
  std::ifstream in(dir.file("full.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  std::string path = dir.write("cut.gz", gz.substr(0, gz.size() / 2));
  EXPECT_FALSE(error_of([&] { read_idx_images(path); }).empty());
  // Cut inside its 10-byte gzip header: it read as "0 bytes (after decompression): too short
  // for an IDX header".
  for (size_t keep : {5u, 12u}) {
    const std::string head = dir.write("head" + std::to_string(keep) + ".gz", gz.substr(0, keep));
    EXPECT_EQ(error_of([&] { read_idx_images(head); }), head + ": truncated gzip data") << keep;
    EXPECT_EQ(error_of([&] { read_idx_labels(head); }), head + ": truncated gzip data") << keep;
  }
}

TEST(Idx, MissingFileIsNamed) {
  EXPECT_NE(
      error_of([] { read_idx_images("/no/such/file"); }).find("/no/such/file: no such data file"),
      std::string::npos);
}

TEST(Cifar, ReadsRecordsAndChecksThem) {
  testing::TempDir dir;
  std::string rec;
  for (int r = 0; r < 2; ++r) {
    rec += char(r == 0 ? 3 : 9);
    for (int i = 0; i < 3072; ++i) rec += char((i + r) % 256);
  }
  RawImages img;
  std::vector<uint8_t> labels;
  read_cifar10_batch(dir.write("b.bin", rec), img, labels);
  EXPECT_EQ(img.count, 2);
  EXPECT_EQ(img.channels, 3);
  EXPECT_EQ(labels, (std::vector<uint8_t>{3, 9}));
  EXPECT_EQ(img.pixels[3072 + 5], 6);
  std::string cut = dir.write("cut.bin", rec.substr(0, 4000));
  EXPECT_NE(error_of([&] {
              read_cifar10_batch(cut, img, labels);
            }).find("not a whole number of CIFAR-10 records"),
            std::string::npos);
  std::string bad = rec;
  bad[3073] = 12;  // the second record's label
  std::string badp = dir.write("bad.bin", bad);
  EXPECT_NE(error_of([&] { read_cifar10_batch(badp, img, labels); }).find("label 12"),
            std::string::npos);
  // Nothing of the refused file was taken (its first record had been appended, uncounted).
  EXPECT_EQ(labels, (std::vector<uint8_t>{3, 9}));
  EXPECT_EQ(img.pixels.size(), size_t(2 * 3072));
  EXPECT_EQ(img.count, 2);
  // More than a batch's 10,000 records: refused (a wrong file, or a gzip bomb) after 10,001.
  write_gz(dir.file("big.gz"), std::string(size_t(10001) * 3073, '\0'));
  EXPECT_NE(error_of([&] { read_cifar10_batch(dir.file("big.gz"), img, labels); })
                .find("more than 30730000 bytes (after decompression): a CIFAR-10 batch holds at "
                      "most 10000 records"),
            std::string::npos);
  EXPECT_EQ(img.count, 2);
}

}  // namespace
}  // namespace empiric
