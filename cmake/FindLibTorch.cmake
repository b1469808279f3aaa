# LibTorch from the torch Python wheel (or an explicit Torch_DIR).
#
# The wheel is a CUDA 13 build, so torch's own CMake config enables CUDA and looks the toolkit up
# again. Three of its look-ups fight a plain system toolkit; they are settled here, before
# find_package(Torch), instead of patching the wheel:
#  - architectures: torch ignores CMAKE_CUDA_ARCHITECTURES and defaults to a list that starts at
#    sm_50, which nvcc 13 no longer accepts. TORCH_CUDA_ARCH_LIST pins what we target.
#  - cuDNN / cuSPARSELt / cuDSS / cuFile: only needed by code that calls them directly; off.
#  - NVTX: torch's target wants CUDA::nvtx3, which the toolkit provides header-only; CMake's
#    FindCUDAToolkit (3.25) does not define it, so an interface target stands in.
if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
  if(NOT EXISTS "${EMPIRIC_PYTHON}")
    find_program(EMPIRIC_PYTHON_FALLBACK python3 REQUIRED)
    set(EMPIRIC_PYTHON "${EMPIRIC_PYTHON_FALLBACK}")
  endif()
  execute_process(
    COMMAND "${EMPIRIC_PYTHON}" -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix RESULT_VARIABLE _torch_rc ERROR_QUIET)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "LibTorch: '${EMPIRIC_PYTHON}' cannot import torch. Run scripts/setup.sh "
                        "(it installs torch==2.11.0 into .venv) or pass -DTorch_DIR=...")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()

if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0+PTX")
endif()
set(ENV{TORCH_CUDA_ARCH_LIST} "${TORCH_CUDA_ARCH_LIST}")
set(USE_CUDNN OFF)
set(USE_CUSPARSELT OFF)
set(USE_CUDSS OFF)
set(USE_CUFILE OFF)

find_package(CUDAToolkit QUIET)
# Without a CUDA toolkit (a machine with none; EMPIRIC_CUDA=OFF), torch's config still loads its
# cuda.cmake, which fails unless torch::cudart exists: an empty stand-in lets the CPU build
# configure (libtorch_cuda.so finds the wheel's own CUDA runtime when it loads).
if(NOT CUDAToolkit_FOUND AND NOT TARGET torch::cudart)
  add_library(torch::cudart INTERFACE IMPORTED)
endif()
if(CUDAToolkit_FOUND AND NOT TARGET CUDA::nvtx3)
  add_library(CUDA::nvtx3 INTERFACE IMPORTED)
  target_include_directories(CUDA::nvtx3 INTERFACE "${CUDAToolkit_INCLUDE_DIRS}")
endif()

# torch's cuda.cmake resets CMAKE_CUDA_ARCHITECTURES; keep ours and restore it afterwards.
set(_empiric_cuda_archs "80-real;90")
unset(CMAKE_CUDA_ARCHITECTURES)
unset(CMAKE_CUDA_ARCHITECTURES CACHE)
find_package(Torch REQUIRED)
set(EMPIRIC_CUDA_ARCHITECTURES "${_empiric_cuda_archs}")

# torch's config adds -D_GLIBCXX_USE_CXX11_ABI and friends to TORCH_CXX_FLAGS.
separate_arguments(_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_library(empiric_torch INTERFACE)
target_link_libraries(empiric_torch INTERFACE ${TORCH_LIBRARIES})
# libtorch.so exports its own copy of std::filesystem (from an older libstdc++), some of it broken
# (remove_all jumps to a null pointer). Naming libstdc++ before libtorch in DT_NEEDED makes the
# dynamic linker bind those symbols to the system libstdc++ instead.
target_link_options(empiric_torch INTERFACE "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
target_compile_options(empiric_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_cxx_flags}>)
execute_process(
  COMMAND "${EMPIRIC_PYTHON}" -c "import torch, sys; sys.stdout.write(torch.__version__)"
  OUTPUT_VARIABLE EMPIRIC_TORCH_VERSION ERROR_QUIET)
message(STATUS "empiric: LibTorch ${Torch_VERSION} (${EMPIRIC_TORCH_VERSION}) from ${TORCH_INSTALL_PREFIX}")
