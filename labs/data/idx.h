// Readers for the on-disk formats of the image datasets, with no torch: IDX (MNIST, Fashion-MNIST;
// plain or gzip) and the CIFAR-10 binary batches. Every size is checked against the header, so a
// truncated or foreign file is a UserError that says what was expected and what was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace empiric {

struct RawImages {
  int64_t count = 0, channels = 1, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count x channels x rows x cols
};

// Each reads plain or gzip files (gzip detected by content, not by name), the header first: a file
// that holds more than its header says is refused before more than one byte past it is read.
RawImages read_idx_images(const std::string& path);             // magic 0x00000803
std::vector<uint8_t> read_idx_labels(const std::string& path);  // magic 0x00000801

// One CIFAR-10 binary batch (data_batch_1.bin, ...), appended: records of 1 label + 3072 pixels,
// at most 10,000 of them.
void read_cifar10_batch(const std::string& path, RawImages& images, std::vector<uint8_t>& labels);

}  // namespace empiric
