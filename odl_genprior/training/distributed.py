"""Data parallel training under ``torchrun``: process group,
DistributedDataParallel, gradient averaging, broadcast and gather (used by
the loop)."""
import os

import torch


# --- distributed -------------------------------------------------------------

class _Dist:
    """Rank, world size and the collectives the loop needs."""

    def __init__(self, device, distributed):
        import torch.distributed as dist
        self.dist = dist
        env_world = int(os.environ.get('WORLD_SIZE', '1'))
        active = dist.is_available() and (
            dist.is_initialized() or env_world > 1)
        if distributed is True and not active:
            raise RuntimeError(
                'distributed=True, but no process group is initialized and '
                'WORLD_SIZE is not > 1: launch with torchrun, e.g. `torchrun '
                '--standalone --nproc_per_node=2 script.py`')
        if distributed is False or not active:
            self.rank, self.world, self.device = 0, 1, device
            return
        if device.type == 'cuda' and device.index is None:
            device = torch.device('cuda', int(os.environ.get('LOCAL_RANK',
                                                             '0')))
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # env:// rendezvous set up by torchrun (MASTER_ADDR, RANK, ...).
            dist.init_process_group('nccl' if device.type == 'cuda'
                                    else 'gloo')
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = device

    def barrier(self):
        if self.world > 1:
            self.dist.barrier()

    def mean(self, values):
        """Average a list of floats over processes (identical on all)."""
        if self.world == 1 or not values:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return (t / self.world).tolist()

    def data_parallel(self, module):
        """``module`` in ``torch.nn.parallel.DistributedDataParallel``
        (parameters and buffers copied from rank 0; the loop broadcasts
        buffers itself after each step).

        DDP needs one call of the wrapper per backward pass; the loop falls
        back to `sync_grads` for a loss that never calls it.
        """
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == 'cuda' else None
        return DistributedDataParallel(module, device_ids=ids,
                                       broadcast_buffers=False)

    def sync_grads(self, params):
        """Average ``.grad`` over processes (in place): for ``step_fn``,
        dicts of models and losses that DDP does not cover."""
        params = list(params)
        if self.world == 1 or not params:
            return
        # A parameter may have no gradient on some processes only (a branch
        # not taken): it then counts as zero there.
        has = torch.tensor([p.grad is not None for p in params],
                           dtype=torch.float32, device=self.device)
        self.dist.all_reduce(has)
        groups = {}
        for p, h in zip(params, has.tolist()):
            if h > 0:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                if p.grad.is_sparse:
                    raise TypeError('sparse gradients are not supported in '
                                    'distributed training')
                groups.setdefault((p.grad.dtype, p.grad.device),
                                  []).append(p.grad)
        for grads in groups.values():  # one all_reduce per dtype
            flat = torch.cat([g.reshape(-1) for g in grads])
            self.dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_module(self, module, buffers_only=False):
        """Copy rank 0's parameters (and buffers) to every process."""
        if self.world == 1:
            return
        with torch.no_grad():
            tensors = list(module.buffers())
            if not buffers_only:
                tensors = list(module.parameters()) + tensors
            for t in tensors:
                self.dist.broadcast(t, 0)

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out
