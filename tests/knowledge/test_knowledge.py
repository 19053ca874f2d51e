"""Knowledge: every document format parsed and chunked, hostile files failing their own document,
URLs through the outbound guard, hybrid retrieval against each list alone, tenant scoping, the API and
the pages. Indexing here calls the worker's service in the test transaction; the Celery path (after
commit, on the `ai` queue) is proven in test_reindex_e2e.py."""

from __future__ import annotations

import http.server
import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client, override_settings
from django.utils import translation

from accounts.models import Role
from accounts.services import api_token_create
from knowledge import parsing, services
from knowledge.embeddings import embedder_current, embedder_for, local_embedder
from knowledge.models import Chunk, Document, DocumentKind, DocumentStatus, KnowledgeBase, Lexeme
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.knowledge.files import docx_bytes, pdf_bytes
from tests.support import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Messages matched in English (the tenants' default language is pt-BR; the pages test checks both)."""
    with translation.override("en"):
        yield


def _index(document: Document) -> Document:
    document.refresh_from_db()
    services.document_index(document_id=document.pk, version=document.version)
    document.refresh_from_db()
    return document


def _texts(document: Document) -> list[str]:
    return list(Chunk.objects.filter(document=document).order_by("position").values_list("text", flat=True))


@pytest.fixture
def kb(in_tenant_a: Tenant) -> KnowledgeBase:
    return services.knowledge_base_create(name="Loja", description="FAQ")


# --- formats ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "expected"),
    [
        ("precos.txt", b"Frete para Campinas custa R$ 19.\n\nEntregamos em 2 dias.", "Campinas custa R$ 19"),
        ("trocas.md", b"# Trocas\n## Prazo\nTrocas em ate 7 dias.\n## Como\nPelo WhatsApp.", "Trocas > Prazo\nTrocas"),
        ("catalogo.pdf", pdf_bytes(["Garantia de 12 meses", "Assistência técnica em São Paulo"]), "São Paulo"),
        ("politica.docx", docx_bytes(["Política de devolução", "Reembolso em até 5 dias úteis"]), "Reembolso em até 5"),
        ("faq.csv", "pergunta;resposta\nTem Pix?;Sim, chave CNPJ.\nAbre domingo?;Não.\n".encode(), "Tem Pix?\nSim"),
        ("latin1.txt", "Promoção de verão: açaí".encode("cp1252"), "Promoção de verão: açaí"),
    ],
)
def test_each_format_is_parsed_chunked_and_embedded(
    kb: KnowledgeBase, filename: str, data: bytes, expected: str
) -> None:
    document = _index(services.document_add_file(knowledge_base=kb, filename=filename, data=data))
    assert document.status == DocumentStatus.READY, document.error
    assert document.progress == 100 and document.chunk_count >= 1
    texts = _texts(document)
    assert any(expected in t for t in texts), texts
    chunk = Chunk.objects.filter(document=document).first()
    assert chunk is not None and chunk.embedding_model == local_embedder().name and chunk.embedding_dim == 384
    assert len(chunk.embedding) == 384


def test_csv_pairs_become_one_chunk_each_and_are_listed(kb: KnowledgeBase) -> None:
    data = b"question,answer\nDo you deliver?,Yes in BH.\nOpen on Sunday?,Until 1pm.\n,skipped\n"
    document = _index(services.document_add_file(knowledge_base=kb, filename="faq.csv", data=data))
    assert document.chunk_count == 2
    assert list(document.qa_pairs.values_list("question", flat=True)) == ["Do you deliver?", "Open on Sunday?"]


def test_pasted_text_and_markdown(kb: KnowledgeBase) -> None:
    plain = _index(services.document_add_text(knowledge_base=kb, name="Sobre", text="Somos uma loja de BH."))
    assert plain.kind == DocumentKind.TEXT and _texts(plain) == ["Somos uma loja de BH."]
    md = _index(services.document_add_text(knowledge_base=kb, name="Guia", text="# Guia\ntexto", markdown=True))
    assert _texts(md) == ["Guia\ntexto"]
    with pytest.raises(ValidationError):
        services.document_add_text(knowledge_base=kb, name="", text="   ")


def test_chunks_overlap_and_respect_the_size() -> None:
    sentences = [f"Frase número {i} sobre o assunto {i % 7} da loja." for i in range(120)]
    text = " ".join(sentences)
    chunks = parsing.chunk_text(text, size=400, overlap=100)
    assert len(chunks) > 5
    assert all(len(c) <= 400 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after[:40] in before, "each chunk starts with the end of the one before"
    joined = " ".join(chunks)
    assert all(s in joined for s in sentences)  # nothing lost at a boundary


def test_a_long_paragraph_without_sentences_is_cut_hard() -> None:
    chunks = parsing.chunk_text("x" * 5000, size=900, overlap=150)
    assert all(len(c) <= 900 for c in chunks) and sum(len(c) for c in chunks) >= 5000


# --- hostile files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("quebrado.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ntrailer <<>>\n%%EOF", "PDF"),
        ("truncado.pdf", pdf_bytes(["texto"])[:120], "PDF"),
        ("imagem.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "PDF"),
        ("falso.docx", b"PK\x03\x04 not really a zip", "Word"),
        ("bomba.docx", docx_bytes([], document_xml=b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'), "Word"),
        ("sem-corpo.docx", docx_bytes([], document_xml=b"<w:document"), "Word"),
        ("binario.txt", b"\x00\x01\x02\x03" * 100, "not a text file"),
        ("vazio.csv", b"\n\n;;\n", "CSV"),
        ("uma-coluna.csv", b"so uma coluna\noutra linha\n", "question/answer"),
    ],
)
def test_a_broken_file_fails_its_own_document_with_a_clear_error(
    kb: KnowledgeBase, filename: str, data: bytes, message: str
) -> None:
    document = _index(services.document_add_file(knowledge_base=kb, filename=filename, data=data))
    assert document.status == DocumentStatus.FAILED
    assert message in document.error
    assert not Chunk.objects.filter(document=document).exists()


def test_uploads_are_refused_when_too_large_empty_or_of_an_unknown_kind(kb: KnowledgeBase) -> None:
    with override_settings(KNOWLEDGE_UPLOAD_MAX_BYTES=1000), pytest.raises(ValidationError, match="larger than"):
        services.document_add_file(knowledge_base=kb, filename="a.txt", data=b"x" * 1001)
    with pytest.raises(ValidationError, match="empty"):
        services.document_add_file(knowledge_base=kb, filename="a.txt", data=b"")
    with pytest.raises(ValidationError, match="not supported"):
        services.document_add_file(knowledge_base=kb, filename="run.exe", data=b"MZ")


def test_file_names_cannot_climb_out_of_the_storage_folder(kb: KnowledgeBase) -> None:
    document = services.document_add_file(knowledge_base=kb, filename="../../etc/passwd.txt", data=b"oi")
    assert document.name == "passwd.txt" and ".." not in document.file.name
    assert document.file.name.startswith("knowledge/")
    document.file.delete(save=False)


def test_an_oversized_text_is_refused_on_its_document(kb: KnowledgeBase) -> None:
    with override_settings(KNOWLEDGE_MAX_TEXT_CHARS=100):
        document = _index(services.document_add_file(knowledge_base=kb, filename="longo.txt", data=b"a " * 200))
    assert document.status == DocumentStatus.FAILED and "more than" in document.error


# --- web pages through the outbound guard -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/faq",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.0.1]/",
        "file:///etc/passwd",
    ],
)
def test_a_private_or_metadata_address_is_refused(kb: KnowledgeBase, url: str) -> None:
    with pytest.raises(ValidationError, match="cannot be fetched"):
        services.document_add_url(knowledge_base=kb, url=url)
    assert not Document.objects.filter(kind=DocumentKind.URL).exists()


@pytest.fixture
def web_page() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://10.1.2.3/secret")
                self.end_headers()
                return
            body = (
                "<html><head><title>Política de entregas</title><style>p{color:red}</style></head><body>"
                "<nav>menu</nav><h1>Entregas</h1><p>Entregamos em Niterói em 24 horas.</p>"
                "<script>alert('x')</script></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_web_page_is_fetched_through_the_guard_and_indexed(kb: KnowledgeBase, web_page: str) -> None:
    document = _index(services.document_add_url(knowledge_base=kb, url=f"{web_page}/entregas"))
    assert document.status == DocumentStatus.READY, document.error
    assert document.name == "Política de entregas"
    assert "Entregamos em Niterói em 24 horas." in document.text
    assert "alert" not in document.text and "color:red" not in document.text and "menu" not in document.text


def test_a_redirect_into_a_private_address_fails_the_document(kb: KnowledgeBase, web_page: str) -> None:
    document = _index(services.document_add_url(knowledge_base=kb, url=f"{web_page}/redirect"))
    assert document.status == DocumentStatus.FAILED and "10.1.2.3" in document.error


def test_loopback_is_refused_outside_tests_and_the_demo(kb: KnowledgeBase, web_page: str) -> None:
    with override_settings(OUTBOUND_URL_ALLOW_LOOPBACK=False), pytest.raises(ValidationError):
        services.document_add_url(knowledge_base=kb, url=web_page)


# --- retrieval ----------------------------------------------------------------------------------------

FIXTURE = {
    "garantia.md": "Todos os aparelhos têm garantia de 12 meses contra defeitos de fabricação. "
    "O plano de garantia estendida tem o código GX-7781 e custa R$ 199.",
    "envios.md": "Enviamos para todo o Brasil pelos Correios e por transportadora. "
    "O prazo de envio é de 3 a 7 dias úteis depois da confirmação.",
    "pagamentos.md": "Aceitamos Pix, boleto bancário e cartão de crédito em até 12 vezes sem juros.",
    "loja.md": "Nossa loja física fica na Rua Augusta 500, em São Paulo, aberta de segunda a sábado.",
    "devolucoes.md": "Para devolver um produto, peça em até 7 dias após o recebimento; o reembolso sai em 5 dias.",
    "promocoes.md": "Promoção de parafusadeiras e furadeiras com 20% de desconto em novembro.",
    "ferramentas.md": "A parafusadeira Makita DF333 vem com duas baterias e maleta.",
    "precos.md": "Tabela de preços dos planos e serviços: os valores de cada plano e de cada ferramenta mudam "
    "todo mês e são informados pelo atendimento.",
    "equipe.md": "Pedidos para empresas são atendidos pela Iracema Tavares, das 9h às 17h.",
}
QUESTIONS = [
    ("GX-7781", "garantia.md"),
    ("how long does shipping take?", "envios.md"),
    ("can I pay in installments?", "pagamentos.md"),
    ("rua augusta", "loja.md"),
    ("quero meu dinheiro de volta", "devolucoes.md"),
    ("DF333 bateria", "ferramentas.md"),
    ("vcs parcelam no cartao?", "pagamentos.md"),
    ("qnto tempo demora pra chegar?", "envios.md"),
    ("Iracema", "equipe.md"),
    ("quem é a Tavares?", "equipe.md"),
    ("custa 199?", "garantia.md"),
    ("qual o preço do plano GX-7781?", "garantia.md"),
    ("valor da DF333", "ferramentas.md"),
    ("meu dinheiro de volta: reembolso", "devolucoes.md"),
    ("parcelo sem juros?", "pagamentos.md"),
]


def _mrr(ranked: list[list[int]], names: dict[int, str]) -> float:
    total = 0.0
    for ids, (_q, target) in zip(ranked, QUESTIONS, strict=True):
        for rank, chunk_id in enumerate(ids[:10], start=1):
            if names[chunk_id] == target:
                total += 1 / rank
                break
    return total / len(QUESTIONS)


def test_hybrid_is_never_below_vector_and_beats_full_text(kb: KnowledgeBase) -> None:
    """On this fixture the multilingual model is already strong (see bench/rag_eval.py for the 65-question
    set, where hybrid recall@5 is above each alone); fusion must not lose what the vector list finds."""
    for name, text in FIXTURE.items():
        _index(services.document_add_text(knowledge_base=kb, name=name, text=text))
    names = dict(Chunk.objects.values_list("id", "document__name"))
    vec, fts, hybrid = [], [], []
    for question, _target in QUESTIONS:
        candidates = services.retrieve_lists(query=question, knowledge_base_ids=[kb.pk])
        vec.append(candidates.vector)
        fts.append(candidates.fts)
        hybrid.append([p.chunk_id for p in services.retrieve(query=question, knowledge_base_ids=[kb.pk], k=10)])
    scores = {"vector": _mrr(vec, names), "fts": _mrr(fts, names), "hybrid": _mrr(hybrid, names)}
    assert scores["hybrid"] >= scores["vector"] and scores["hybrid"] > scores["fts"], scores


def _frequencies(kb: KnowledgeBase) -> dict[str, int]:
    return dict(Lexeme.objects.filter(knowledge_base=kb).values_list("lexeme", "chunks"))


def test_document_frequencies_follow_new_versions_and_deletes(kb: KnowledgeBase) -> None:
    """The counts full-text retrieval weighs words by stay equal to a recount from the indexed chunks
    through a first index, a new version swapped in, and a delete."""
    cenoura = _index(services.document_add_text(knowledge_base=kb, name="a", text="Bolo de cenoura com cobertura."))
    _index(services.document_add_text(knowledge_base=kb, name="b", text="Bolo de fubá cremoso."))
    counted = _frequencies(kb)
    assert counted["bol"] == 2 and counted["cenour"] == 1 and "fuba" in counted
    assert services.lexemes_rebuild(kb.pk) == len(counted) and _frequencies(kb) == counted

    _index(services.document_update_text(document=cenoura, text="Torta de limão."))
    counted = _frequencies(kb)
    assert counted["bol"] == 1 and "cenour" not in counted and counted["limao"] == 1
    services.lexemes_rebuild(kb.pk)
    assert _frequencies(kb) == counted

    services.document_delete(document=Document.objects.get(name="b"))
    assert "bol" not in _frequencies(kb) and _frequencies(kb)["tort"] == 1
    services.knowledge_base_delete(knowledge_base=kb)
    assert not Lexeme.objects.exists()


def test_a_rare_query_word_outweighs_a_common_one_repeated(kb: KnowledgeBase) -> None:
    """BM25's IDF: "bolo" is in every document, "cenoura" in one; the chunk that says "bolo" four times
    and nothing of carrots ranks under the one with the carrot."""
    _index(services.document_add_text(knowledge_base=kb, name="bolos", text="Bolo, bolo, bolo e mais bolo: temos."))
    _index(services.document_add_text(knowledge_base=kb, name="cenoura", text="Cenoura com chocolate é a base."))
    for i in range(4):
        _index(services.document_add_text(knowledge_base=kb, name=f"outro{i}", text=f"Bolo de sabor número {i}."))
    names = dict(Chunk.objects.values_list("id", "document__name"))
    candidates = services.retrieve_lists(query="bolo de cenoura", knowledge_base_ids=[kb.pk])
    assert names[candidates.fts[0]] == "cenoura"
    assert candidates.coverage == 1.0  # every lexeme of the query is in the base


def test_full_text_weighs_in_the_fusion_by_how_much_of_the_query_the_base_knows(kb: KnowledgeBase) -> None:
    _index(services.document_add_text(knowledge_base=kb, name="pt", text="Entregamos bolos de segunda a sábado."))
    english = services.retrieve_lists(query="do you deliver cakes on mondays?", knowledge_base_ids=[kb.pk])
    portuguese = services.retrieve_lists(query="vcs entregam bolo na segunda?", knowledge_base_ids=[kb.pk])
    assert english.coverage < 0.2 < 0.5 < portuguese.coverage <= 1.0

    known = services.Candidates(vector=[1, 2, 3], fts=[3], coverage=1.0)
    assert [cid for cid, _s in services.hybrid_rank(known)] == [3, 1, 2]  # full-text's first lifts the vector's third
    stray = services.Candidates(vector=[1, 2, 3], fts=[3], coverage=0.2)
    assert [cid for cid, _s in services.hybrid_rank(stray)] == [1, 2, 3]  # a stray word's match moves nothing
    top = services.Candidates(vector=[5], fts=[5], coverage=1.0)
    assert services.hybrid_rank(top) == [(5, pytest.approx(1.0))]  # first in both lists: 1


def test_chat_abbreviations_are_spelled_out_for_both_searches() -> None:
    """Full-text gets the customer's words and their spelled-out forms; the embedding model reads the
    sentence written out in place (measured in bench/rag_eval.py: vector recall@1 0.80 -> 0.86)."""
    from knowledge.query import query_expand, query_spell_out

    assert query_expand("vc aceita pix? qnto fica") == "vc aceita pix? qnto fica você quanto"
    assert query_spell_out("Vc aceita pix? qnto fica") == "você aceita pix? quanto fica"
    assert query_spell_out("Bolo de cenoura") == "Bolo de cenoura"


def test_full_text_folds_accents_and_speaks_portuguese_and_english(kb: KnowledgeBase) -> None:
    _index(services.document_add_text(knowledge_base=kb, name="pt", text="Não fazemos entregas aos domingos."))
    _index(services.document_add_text(knowledge_base=kb, name="en", text="Our shipping partners deliver overseas."))
    names = dict(Chunk.objects.values_list("id", "document__name"))
    fts = services.retrieve_lists(query="nao entregamos domingo", knowledge_base_ids=[kb.pk]).fts
    assert [names[i] for i in fts][:1] == ["pt"]  # accents folded, Portuguese stems (entregas ~ entregamos)
    fts = services.retrieve_lists(query="delivering", knowledge_base_ids=[kb.pk]).fts
    assert [names[i] for i in fts][:1] == ["en"]  # English stems


def test_retrieve_answers_passages_of_the_named_bases_only(kb: KnowledgeBase) -> None:
    other = services.knowledge_base_create(name="Outra")
    _index(services.document_add_text(knowledge_base=kb, name="frete.md", text="O frete para Recife custa R$ 30."))
    _index(services.document_add_text(knowledge_base=other, name="frete2.md", text="O frete para Recife é grátis."))
    passages = services.retrieve(query="frete recife", knowledge_base_ids=[kb.pk], k=5)
    assert [p.document_name for p in passages] == ["frete.md"]
    passage = passages[0]
    assert passage.text == "O frete para Recife custa R$ 30." and passage.score > 0
    assert passage.document_id == Document.objects.get(name="frete.md").pk
    assert services.retrieve(query="frete", knowledge_base_ids=[], k=5) == []
    assert services.retrieve(query="  ", knowledge_base_ids=[kb.pk], k=5) == []


def test_retrieval_is_scoped_to_the_tenant(tenant_a: Tenant, tenant_b: Tenant, db: Any) -> None:
    connection.set_tenant(tenant_b)
    kb_b = services.knowledge_base_create(name="Beta")
    _index(services.document_add_text(knowledge_base=kb_b, name="segredo.md", text="Senha do cofre da Beta: 4242."))
    assert services.retrieve(query="senha do cofre", knowledge_base_ids=[kb_b.pk])
    connection.set_tenant(tenant_a)
    # Beta's id, asked in Alpha's schema: Alpha has no such chunks, whatever the id.
    assert services.retrieve(query="senha do cofre", knowledge_base_ids=[kb_b.pk]) == []
    connection.set_schema_to_public()


def test_a_changed_document_replaces_its_chunks_and_an_older_run_changes_nothing(kb: KnowledgeBase) -> None:
    document = _index(services.document_add_text(knowledge_base=kb, name="horario", text="Abrimos às 8h."))
    first_version = document.version
    services.document_update_text(document=document, text="Abrimos às 9h aos sábados.")
    document.refresh_from_db()
    assert document.status == DocumentStatus.PENDING and document.progress == 0
    # Until the new version is indexed, search still answers the old one.
    assert [p.text for p in services.retrieve(query="abrimos", knowledge_base_ids=[kb.pk])] == ["Abrimos às 8h."]
    assert services.document_index(document_id=document.pk, version=first_version) == "stale"
    _index(document)
    assert _texts(document) == ["Abrimos às 9h aos sábados."]
    assert [p.text for p in services.retrieve(query="abrimos", knowledge_base_ids=[kb.pk])] == [
        "Abrimos às 9h aos sábados."
    ]


def test_qa_pairs_edited_reindex_their_document(kb: KnowledgeBase) -> None:
    pair = services.qa_pair_create(knowledge_base=kb, question="Tem estacionamento?", answer="Sim, gratuito.")
    document = _index(pair.document)
    assert _texts(document) == ["Tem estacionamento?\nSim, gratuito."]
    services.qa_pair_update(pair=pair, question="Tem estacionamento?", answer="Sim, 2 horas grátis.")
    assert _texts(_index(document)) == ["Tem estacionamento?\nSim, 2 horas grátis."]
    services.qa_pair_delete(pair=pair)
    assert _texts(_index(document)) == []
    with pytest.raises(ValidationError):
        services.qa_pair_create(knowledge_base=kb, question="só pergunta", answer=" ")


def test_embedder_for_picks_the_tenants_server_only_with_a_key() -> None:
    class Row:
        api_key = "sk-test"
        effective_base_url = "http://127.0.0.1:9/v1"
        embedding_model = "text-embedding-3-small"
        embedding_dimensions = 384

    assert embedder_for(None).name == local_embedder().name
    remote = embedder_for(Row())
    assert remote.name == "openai/text-embedding-3-small@384" and remote.dim == 384
    assert "sk-test" not in repr(remote)
    Row.api_key = ""
    assert embedder_for(Row()).name == local_embedder().name
    assert embedder_current().name == local_embedder().name


# --- API ----------------------------------------------------------------------------------------------


def _api(tenant: Tenant, role: str) -> Client:
    user = make_member(tenant, f"kb-{role}-{uuid.uuid4().hex[:8]}@alpha.test", role)
    _token, raw = api_token_create(user=user, tenant=tenant, name="kb")
    client = Client(HTTP_HOST=f"{tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    client.cookies["django_language"] = "en"
    return client


def test_the_search_api_answers_ranked_passages(tenant_a: Tenant, db: Any) -> None:
    owner = _api(tenant_a, Role.OWNER)
    created = owner.post("/api/v1/knowledge-bases/", {"name": "Suporte"}, content_type="application/json")
    assert created.status_code == 201, created.content
    kb_id = created.json()["id"]
    upload = owner.post(
        "/api/v1/knowledge-documents/",
        {"knowledge_base": kb_id, "file": _upload("trocas.txt", "Trocas em até 30 dias com nota fiscal.".encode())},
    )
    assert upload.status_code == 201, upload.content
    body = upload.json()
    assert body["status"] == "pending" and body["kind"] == "txt" and body["name"] == "trocas.txt"
    connection.set_tenant(tenant_a)
    _index(Document.objects.get(pk=body["id"]))
    pair = owner.post(
        "/api/v1/qa-pairs/",
        {"knowledge_base": kb_id, "question": "Faz entrega?", "answer": "Sim, em SP."},
        content_type="application/json",
    )
    assert pair.status_code == 201, pair.content
    connection.set_tenant(tenant_a)
    _index(Document.objects.get(pk=pair.json()["document"]))
    status = owner.get(f"/api/v1/knowledge-documents/{body['id']}/").json()
    assert status["status"] == "ready" and status["progress"] == 100 and status["chunk_count"] == 1

    agent = _api(tenant_a, Role.AGENT)
    found = agent.post(
        f"/api/v1/knowledge-bases/{kb_id}/search/",
        {"query": "qro trocar, tenho nota", "k": 10},
        content_type="application/json",
    )
    assert found.status_code == 200, found.content
    results = found.json()["results"]
    assert results[0]["document_name"] == "trocas.txt"
    assert results[0]["text"] == "Trocas em até 30 dias com nota fiscal."
    assert set(results[0]) == {"chunk_id", "document_id", "document_name", "text", "score"}
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(results))
    assert agent.post("/api/v1/knowledge-bases/", {"name": "x"}, content_type="application/json").status_code == 403
    bad = owner.post(f"/api/v1/knowledge-bases/{kb_id}/search/", {"k": 10}, content_type="application/json")
    assert bad.status_code == 400
    refused = owner.post(
        "/api/v1/knowledge-documents/",
        {"knowledge_base": kb_id, "url": "http://10.0.0.1/"},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "cannot be fetched" in refused.content.decode()


def _upload(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


# --- pages --------------------------------------------------------------------------------------------


def test_pages_list_upload_show_progress_edit_pairs_and_search(tenant_a: Tenant, owner_a: Any, agent_a: Any) -> None:
    client = tenant_client(tenant_a, owner_a, lang="en")
    response = client.post("/knowledge/", {"name": "Atendimento", "description": "FAQ"})
    assert response.status_code == 302
    connection.set_tenant(tenant_a)
    kb = KnowledgeBase.objects.get(name="Atendimento")
    connection.set_schema_to_public()
    response = client.post(f"/knowledge/{kb.pk}/add/", {"files": [_upload("horario.md", b"# Horario\nAbrimos 8h.")]})
    assert response.status_code == 302
    page = client.get(f"/knowledge/{kb.pk}/").content.decode()
    assert "horario.md" in page and 'hx-trigger="every 2s"' in page and "<progress" in page
    connection.set_tenant(tenant_a)
    _index(Document.objects.get(name="horario.md"))
    connection.set_schema_to_public()
    partial = client.get(f"/knowledge/{kb.pk}/documents/").content.decode()
    assert 'data-status="ready"' in partial and "every 2s" not in partial  # polling stops when all is done
    client.post(f"/knowledge/{kb.pk}/qa/", {"question": "Tem wifi?", "answer": "Sim."})
    assert "Tem wifi?" in client.get(f"/knowledge/{kb.pk}/").content.decode()
    connection.set_tenant(tenant_a)
    _index(services.qa_document_for(knowledge_base=kb))
    connection.set_schema_to_public()

    reader = tenant_client(tenant_a, agent_a)
    results = reader.get(f"/knowledge/{kb.pk}/search/", {"q": "q horas abre?"}).content.decode()
    assert "Abrimos 8h." in results and 'data-testid="passage"' in results
    assert reader.post(f"/knowledge/{kb.pk}/add/", {"text": "x"}).status_code == 403
    failed = client.post(f"/knowledge/{kb.pk}/add/", {"url": "http://192.168.1.1/"}, follow=True).content.decode()
    assert "cannot be fetched" in failed
    pt = tenant_client(tenant_a, owner_a, lang="pt-br").get(f"/knowledge/{kb.pk}/").content.decode()
    assert "Perguntas e respostas" in pt and "Adicionar conhecimento" in pt


def test_words_in_most_chunks_are_left_out_of_the_full_text_query_unless_all_are(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    document = services.document_add_text(knowledge_base=kb, name="receitas", text="x")
    Document.objects.filter(pk=document.pk).update(
        version=1, indexed_version=1, status=DocumentStatus.READY, chunk_count=60
    )
    texts = ["bolo de cenoura com cobertura" if i == 7 else f"bolo simples numero {i}" for i in range(60)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Chunk._meta.db_table} (document_id, knowledge_base_id, position, version, text,"  # noqa: S608
            " embedding_model, embedding_dim, search_vector)"
            " SELECT %s, %s, p, 1, t, '', 0, to_tsvector('portuguese', t) || to_tsvector('english', t)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, p)",
            [document.pk, kb.pk, texts],
        )
        cursor.execute(f"ANALYZE {Chunk._meta.db_table}")
    services.lexemes_rebuild(kb.pk)  # written by SQL, not through document_index
    monkeypatch.setattr(services, "COMMON_LEXEME_MIN_CHUNKS", 50)
    monkeypatch.setattr(services, "_common_cache", {})
    assert "bol" in services.common_lexemes()  # in every chunk ("bolo", stemmed)
    names = dict(Chunk.objects.values_list("id", "text"))
    fts = services.retrieve_lists(query="bolo de cenoura", knowledge_base_ids=[kb.pk]).fts
    assert [names[i] for i in fts] == ["bolo de cenoura com cobertura"]  # only the rare word was searched
    fts = services.retrieve_lists(query="bolo", knowledge_base_ids=[kb.pk]).fts
    assert len(fts) == services.CANDIDATES  # every word is common: the query keeps them all

    monkeypatch.setattr(services, "COMMON_LEXEME_MIN_CHUNKS", 5000)
    monkeypatch.setattr(services, "_common_cache", {})
    assert services.common_lexemes() == []  # a small table keeps every word
