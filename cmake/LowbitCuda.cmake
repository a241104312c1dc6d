# The CUDA backend's build settings: language, architectures, CUDAToolkit, cuBLAS, cuDNN.
# Included by the top-level CMakeLists.txt when LOWBIT_CUDA is ON.

# H100/H200 are sm_90; add "native" (or more) with -DCMAKE_CUDA_ARCHITECTURES="90;native" on a GPU machine.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures for the lowbit kernels")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# cuDNN ships inside the toolkit folder on our machines (/usr/local/cuda); LOWBIT_CUDNN_ROOT overrides.
find_path(LOWBIT_CUDNN_INCLUDE cudnn.h
          HINTS ${LOWBIT_CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
          PATH_SUFFIXES include)
find_library(LOWBIT_CUDNN_LIB cudnn
             HINTS ${LOWBIT_CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
             PATH_SUFFIXES lib64 lib)
if(NOT LOWBIT_CUDNN_INCLUDE OR NOT LOWBIT_CUDNN_LIB)
  message(FATAL_ERROR "lowbit: LOWBIT_CUDA is ON but cuDNN was not found (cudnn.h / libcudnn); "
                      "set LOWBIT_CUDNN_ROOT or configure with -DLOWBIT_CUDA=OFF")
endif()
get_filename_component(LOWBIT_CUDNN_LIB_DIR ${LOWBIT_CUDNN_LIB} DIRECTORY)
message(STATUS "lowbit: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, arch ${CMAKE_CUDA_ARCHITECTURES}, "
               "cuDNN ${LOWBIT_CUDNN_LIB})")

# cuDNN as an imported target so the exported package names it the same way (see lowbitConfig.cmake.in).
if(NOT TARGET lowbit_cudnn)
  add_library(lowbit_cudnn SHARED IMPORTED GLOBAL)
  set_target_properties(lowbit_cudnn PROPERTIES IMPORTED_LOCATION ${LOWBIT_CUDNN_LIB}
                        INTERFACE_INCLUDE_DIRECTORIES ${LOWBIT_CUDNN_INCLUDE})
endif()

function(lowbit_cuda_configure_target tgt)
  # Whole-program .cu files (no relocatable device code): each kernel family is one
  # translation unit, which keeps the link simple and the compile short on 2 cores.
  # CMake 3.25 does not know nvcc's C++20 flag (CUDA_STANDARD 20 fails), so it is passed directly.
  set_target_properties(${tgt} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  target_compile_definitions(${tgt} PUBLIC LOWBIT_WITH_CUDA=1)
  target_compile_options(${tgt} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --expt-relaxed-constexpr -Xcompiler=-Wall>)
  # The CPU-only options (-march=native, -Wextra) are for the host compiler of .cpp files only.
  target_link_libraries(${tgt} PUBLIC CUDA::cudart CUDA::cublas
                        $<BUILD_INTERFACE:lowbit_cudnn> $<INSTALL_INTERFACE:lowbit::cudnn>)
endfunction()
