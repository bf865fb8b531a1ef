"""usable_tracker: measure your own network from your own training loop.

Neural collapse (through the nc plugin) and the decodable information bottleneck (sufficiency
and minimality per layer, through the dib plugin) of any ``torch.nn.Module``, after every k-th
epoch, written progressively into a results-store run shaped like the ``track`` metric's
(dims ``epoch, layer, split[, class]``), so ``usable results plot STORE RUN`` draws it.

**Requires the plugins ``nc`` and ``dib``** (reached through ``usable.plugin("nc")`` and
``usable.plugin("dib")``, never imported) and, for ``probe`` decoders, the decoder registry
(``mlp`` by default). It registers no entries of its own. Public API (loaded on first use)::

    import usable
    usable.list_layers(model)                        # module paths: 'layer3', 'layer3.1.conv2', ...
    tracker = usable.Tracker(model, ["layer1", "layer2", "layer3", "layer4"], train=train_loader,
                             test=test_loader, n_classes=10, store="runs.zarr", run="resnet18-s0")
    for epoch in range(1, epochs + 1):
        with tracker.epoch(epoch):                   # or train ..., then tracker.epoch_end(epoch)
            train_one_epoch(model)
    ds = tracker.dataset()                           # every measured epoch (epoch, layer, split[, class])

    from usable.integrations.lightning import UsableCallback   # extra [lightning]
    trainer = lightning.Trainer(callbacks=[UsableCallback(["net.2", "net.5"], n_classes=10, ...)])

Docs: docs/your-own-model.md.
"""
from usable import lazy_exports

_API = {"Tracker": "tracker", "list_layers": "layers", "UsableCallback": "lightning_callback"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
