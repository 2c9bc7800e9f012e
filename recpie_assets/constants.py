"""Tags shared by the assets: which steps need a GPU, and how a deployment finds one."""

GPU_POOL = "gpu"

# The local dagster.yaml limits the `gpu` pool to one step at a time; a Kubernetes
# deployment (K8sRunLauncher / k8s_job_executor) reads the same tags to ask for a GPU pod.
GPU_TAGS = {
    "recpie/gpu": "true",
    "dagster-k8s/config": '{"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}',
}
